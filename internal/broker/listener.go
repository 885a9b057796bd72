package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// tcpListener replaces mochi's listeners.TCP. Its Close closes the accepted
// connections itself instead of calling back into the server: mochi v2.7.9's
// closeListenerClients takes the clients read lock twice (GetByListener calls
// Len), which deadlocks when a client disconnects during shutdown. Closing
// the sockets makes each client's read loop end and clean up on its own.
type tcpListener struct {
	id, addr string
	tlsCfg   *tls.Config
	log      *slog.Logger

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	// clients counts the connections whose client is still being served.
	clients sync.WaitGroup
}

var _ listeners.Listener = (*tcpListener)(nil)

func newTCPListener(id, addr string, tlsCfg *tls.Config) *tcpListener {
	return &tcpListener{id: id, addr: addr, tlsCfg: tlsCfg, conns: map[net.Conn]struct{}{}}
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
		go func() {
			defer l.clients.Done()
			if err := establish(l.id, c); err != nil {
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
