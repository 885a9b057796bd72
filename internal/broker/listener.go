package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// tcpListener replaces mochi's listeners.TCP. Its Close closes the accepted
// connections itself instead of calling back into the server: mochi v2.7.9's
// closeListenerClients takes the clients read lock twice (GetByListener calls
// Len), which deadlocks when a client disconnects during shutdown. Closing
// the sockets makes each client's read loop end and clean up on its own.
//
// It also bounds each connection in time: a socket must send CONNECT within
// connectTimeout (the TLS handshake included), and one write to a client may
// block for at most writeTimeout, after which the connection is closed (a
// subscriber that stopped reading is dropped).
type tcpListener struct {
	id, addr       string
	tlsCfg         *tls.Config
	log            *slog.Logger
	connectTimeout time.Duration
	writeTimeout   time.Duration
	refusals       *refusals

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	// clients counts the connections whose client is still being served.
	clients sync.WaitGroup
}

var _ listeners.Listener = (*tcpListener)(nil)

func newTCPListener(id, addr string, tlsCfg *tls.Config, connectTimeout, writeTimeout time.Duration, r *refusals) *tcpListener {
	return &tcpListener{id: id, addr: addr, tlsCfg: tlsCfg, connectTimeout: connectTimeout, writeTimeout: writeTimeout,
		refusals: r, conns: map[net.Conn]struct{}{}}
}

// boundedConn is one client connection: its reads before CONNECT and each
// write carry a deadline.
type boundedConn struct {
	net.Conn
	tls          *tls.Conn
	writeTimeout time.Duration
	refusals     *refusals
	timedOut     atomic.Bool
}

func (c *boundedConn) Write(b []byte) (int, error) {
	_ = c.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	n, err := c.Conn.Write(b)
	if errors.Is(err, os.ErrDeadlineExceeded) && c.timedOut.CompareAndSwap(false, true) {
		c.refusals.refuse(RefusedWriteTimeout, hostOf(c.RemoteAddr().String()),
			fmt.Sprintf("a write blocked for %s (the client stopped reading); connection closed", c.writeTimeout))
		_ = c.Close()
	}
	return n, err
}

// SetDeadline is mochi's keepalive deadline; it must not lift the write
// bound, which Write sets afresh.
func (c *boundedConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *boundedConn) peerCertificates() []*x509.Certificate {
	if c.tls == nil {
		return nil
	}
	return c.tls.ConnectionState().PeerCertificates
}

func (l *tcpListener) Init(log *slog.Logger) error {
	l.log = log
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", l.addr, err)
	}
	if l.tlsCfg != nil {
		ln = tls.NewListener(ln, l.tlsCfg)
	}
	l.mu.Lock()
	l.ln = ln
	l.mu.Unlock()
	return nil
}

func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.log.Warn("accept failed; listener stops", "listener", l.id, "err", err)
			}
			return
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = c.Close()
			return
		}
		l.conns[c] = struct{}{}
		l.clients.Add(1)
		l.mu.Unlock()
		bc := &boundedConn{Conn: c, writeTimeout: l.writeTimeout, refusals: l.refusals}
		bc.tls, _ = c.(*tls.Conn)
		// mochi replaces this deadline with the keepalive one after CONNECT.
		_ = c.SetReadDeadline(time.Now().Add(l.connectTimeout))
		go func() {
			defer l.clients.Done()
			if err := establish(l.id, bc); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) && strings.HasPrefix(err.Error(), "read connection") {
					l.refusals.refuse(RefusedConnectTimeout, hostOf(c.RemoteAddr().String()),
						fmt.Sprintf("no CONNECT within %s; connection closed", l.connectTimeout))
				}
				l.log.Debug("client connection ended", "listener", l.id, "err", err)
			}
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
		}()
	}
}

func (l *tcpListener) ID() string { return l.id }

// Address is the bound address (with the real port when listening on port 0).
func (l *tcpListener) Address() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

func (l *tcpListener) Protocol() string { return "tcp" }

func (l *tcpListener) Close(listeners.CloseFn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.ln != nil {
		_ = l.ln.Close()
	}
	for c := range l.conns {
		_ = c.Close()
	}
}

// closeAndWait closes the listener and every connection, then waits (at most
// timeout) until the server finished with each client, so that a message it
// was handling reaches the store before the store closes.
func (l *tcpListener) closeAndWait(timeout time.Duration) {
	l.Close(nil)
	done := make(chan struct{})
	go func() { l.clients.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		l.log.Warn("clients still being served at shutdown", "listener", l.id, "waited", timeout)
	}
}
