// Package broker embeds an MQTT 5 broker (mochi-mqtt) for single-binary setups,
// the demo and tests.
package broker

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"
	"k8s.io/utils/clock"
)

// DefaultListen is local: exposing the broker is a deliberate choice.
const DefaultListen = "127.0.0.1:1883"

// Config configures the embedded broker.
type Config struct {
	// Listen is host:port; empty means DefaultListen.
	Listen string
	// Users maps username to password. When it is empty and AllowAnonymous is
	// false, New refuses to start: a broker open to anyone must be asked for.
	Users map[string]string
	// AllowAnonymous lets clients connect without credentials; it is ignored
	// when Users is set (then every client must authenticate).
	AllowAnonymous bool
	// CertFile and KeyFile enable TLS; ClientCAFile also requires clients to
	// present a certificate signed by that CA.
	CertFile, KeyFile, ClientCAFile string
	// Inline enables the in-process client (Server().Subscribe/Publish).
	Inline bool
	// DataDir, when set, keeps sessions, subscriptions, in-flight and
	// retained messages in DataDir/broker.db (bbolt), so a restarted broker
	// still holds what arrives for a subscriber before it is back.
	DataDir string
	// MaxPacketSize refuses larger packets (the sender is disconnected);
	// zero means DefaultMaxPacketSize.
	MaxPacketSize uint32
	// IdentityKey, when set, makes the broker accept the derived password
	// (DerivedPassword) of any identity, with no users file.
	IdentityKey []byte
	// Tokens, when set, accepts the username TokenUsername with a
	// ServiceAccount token as password (TokenAuth).
	Tokens *TokenAuth
	// Bounds limit retained messages and what waits for each subscriber.
	Bounds Bounds
	// ConnectTimeout closes a socket that has not sent CONNECT (after its
	// TLS handshake) in time; zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// WriteTimeout closes a connection one write to which blocked that
	// long (the client stopped reading); zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// MaxClients bounds the connected clients; zero means DefaultMaxClients.
	MaxClients int
	// Registerer receives the broker's metrics (ning_broker_*); nil means a
	// private registry.
	Registerer prometheus.Registerer
	// Clock times the throttling of refusal logs; nil means the real clock.
	Clock clock.PassiveClock
}

// Time and connection bounds.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultMaxClients     = 10_000
	// maxInflight bounds the QoS 1 messages mochi keeps per session; the
	// pending-bytes bound usually acts first.
	maxInflight = 1024
)

// DefaultMaxPacketSize bounds one MQTT packet: twice the sources' 1 MiB
// payload limit, so an oversized report still reaches subscribers and is
// counted there, while a flood of huge packets is refused at the door.
const DefaultMaxPacketSize = 2 << 20

// Broker is a running embedded broker.
type Broker struct {
	srv    *mochi.Server
	ln     *tcpListener
	bounds *boundsHook
}

// New builds a broker; Start makes it listen.
func New(cfg Config, log *slog.Logger) (*Broker, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if len(cfg.Users) == 0 && len(cfg.IdentityKey) == 0 && cfg.Tokens == nil && !cfg.AllowAnonymous {
		return nil, errors.New("no users configured: give a users file, --username/--password-file, an identity key or token identities, or allow anonymous clients explicitly")
	}
	if cfg.Tokens != nil {
		if err := cfg.Tokens.validate(); err != nil {
			return nil, err
		}
	}
	for u := range cfg.Users {
		if _, err := ParseIdentity(u); err != nil {
			return nil, fmt.Errorf("users: %w", err)
		}
	}
	if cfg.MaxPacketSize == 0 {
		cfg.MaxPacketSize = DefaultMaxPacketSize
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	refused, err := newRefusals(reg, log, cfg.Clock)
	if err != nil {
		return nil, err
	}
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = cfg.MaxPacketSize
	caps.MaximumClients = int64(cfg.MaxClients)
	caps.MaximumInflight = maxInflight
	srv := mochi.New(&mochi.Options{Logger: newMochiLog(log), InlineClient: cfg.Inline, Capabilities: caps})
	if err := srv.AddHook(new(sendQuotaHook), nil); err != nil {
		return nil, fmt.Errorf("adding flow-control hook: %w", err)
	}
	ids := &identityHook{srv: srv, users: cfg.Users, key: cfg.IdentityKey, tokens: cfg.Tokens,
		open: cfg.AllowAnonymous && len(cfg.Users) == 0 && len(cfg.IdentityKey) == 0 && cfg.Tokens == nil, refusals: refused}
	if err := srv.AddHook(ids, nil); err != nil {
		return nil, fmt.Errorf("adding identity hook: %w", err)
	}
	bounds := newBoundsHook(srv, cfg.Bounds, refused, ids)
	if err := srv.AddHook(bounds, nil); err != nil {
		return nil, fmt.Errorf("adding bounds hook: %w", err)
	}
	if err := register(reg, bounds.collectors()...); err != nil {
		return nil, err
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("broker data directory: %w", err)
		}
		opts := &bolt.Options{Path: filepath.Join(cfg.DataDir, "broker.db"), Options: &bbolt.Options{Timeout: 5 * time.Second}}
		if err := srv.AddHook(new(bolt.Hook), opts); err != nil {
			return nil, fmt.Errorf("opening the broker's store in %s: %w", cfg.DataDir, err)
		}
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	ln := newTCPListener("tcp", cfg.Listen, tlsCfg, cfg.ConnectTimeout, cfg.WriteTimeout, refused)
	if err := srv.AddListener(ln); err != nil {
		return nil, fmt.Errorf("adding listener %s: %w", cfg.Listen, err)
	}
	return &Broker{srv: srv, ln: ln, bounds: bounds}, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	if c.CertFile == "" && c.KeyFile == "" && c.ClientCAFile == "" {
		return nil, nil
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("TLS needs both a certificate and a key")
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading broker certificate: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("reading client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s: no PEM certificate found", c.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// Start listens and serves in the background.
func (b *Broker) Start() error {
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("starting broker on %s: %w", b.ln.addr, err)
	}
	b.bounds.seedRetained()
	return nil
}

// Addr is the bound address; after Start it has the real port even when
// Config.Listen asked for port 0.
func (b *Broker) Addr() string { return b.ln.Address() }

// Server is the mochi server, for in-process clients (Config.Inline).
func (b *Broker) Server() *mochi.Server { return b.srv }

// Close disconnects every client, waits until the server finished with each
// (a message it acknowledged is in the store), then stops the broker.
func (b *Broker) Close() error {
	b.ln.closeAndWait(5 * time.Second)
	return b.srv.Close()
}

// ParseUsers reads a users file: one "identity:password" a line (identities
// as ParseIdentity reads them); blank lines and lines starting with # are
// ignored.
func ParseUsers(data []byte) (map[string]string, error) {
	users := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		u, p, ok := strings.Cut(line, ":")
		if !ok || u == "" || p == "" {
			return nil, fmt.Errorf("line %d: want username:password", n)
		}
		if _, dup := users[u]; dup {
			return nil, fmt.Errorf("line %d: user %q listed twice", n, u)
		}
		users[u] = p
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading users: %w", err)
	}
	return users, nil
}

// refusedCounter is ning_broker_refused_total{reason} (for tests).
func (b *Broker) refusedCounter(reason string) prometheus.Counter {
	return b.bounds.refusals.total.WithLabelValues(reason)
}
