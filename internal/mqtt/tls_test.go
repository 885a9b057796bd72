package mqtt

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ning-edge/ning/internal/broker"
	"github.com/ning-edge/ning/internal/broker/brokertest"
)

func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "probe@site-a"}, // the identity a client presenting it has
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestPublishMutualTLSWithPassword publishes over mutual TLS with a username
// and password; the same self-signed certificate is CA, server and client,
// and names the identity probe@site-a, which the username repeats.
func TestPublishMutualTLSWithPassword(t *testing.T) {
	cert, key := writeCert(t, t.TempDir())
	b, err := broker.New(broker.Config{Listen: "127.0.0.1:0", Users: map[string]string{"probe@site-a": "pw"},
		CertFile: cert, KeyFile: key, ClientCAFile: cert, Inline: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	if err := b.Server().Subscribe(TopicLatencyAll, 1, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		got <- pk.TopicName
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	publishOne(t, Config{BrokerURL: "tls://" + b.Addr(), CAFile: cert, CertFile: cert, KeyFile: key,
		Username: "probe@site-a", Password: "pw"}, got)
}

// publishOne publishes report(1) with cfg, waits for its topic to arrive on
// got and closes the publisher.
func publishOne(t *testing.T, cfg Config, got <-chan string) {
	t.Helper()
	pub, err := NewPublisher(t.Context(), cfg, PublisherOptions{}, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishLatency(report(1)); err != nil {
		t.Fatal(err)
	}
	select {
	case topic := <-got:
		if topic != "ning/v1/latency/site-a" {
			t.Errorf("topic %q", topic)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the report never arrived from %s", cfg.BrokerURL)
	}
	if err := pub.Close(t.Context()); err != nil {
		t.Error(err)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "none", cfg: Config{}},
		{name: "ca only", cfg: Config{CAFile: cert}},
		{name: "mutual", cfg: Config{CAFile: cert, CertFile: cert, KeyFile: key}},
		{name: "missing ca", cfg: Config{CAFile: filepath.Join(dir, "none")}, wantErr: true},
		{name: "junk ca", cfg: Config{CAFile: junk}, wantErr: true},
		{name: "cert without key", cfg: Config{CertFile: cert}, wantErr: true},
	}
	for _, tt := range tests {
		if _, err := tt.cfg.TLSConfig(); (err != nil) != tt.wantErr {
			t.Errorf("%s: err %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
}

// TestCredentialsOverTLS runs a subscriber and a publisher against a broker
// that requires TLS and a password: the right credentials carry a report end
// to end; a wrong password, an unknown user and no credentials are refused,
// and the error says it was the credentials.
func TestCredentialsOverTLS(t *testing.T) {
	cert, key := writeCert(t, t.TempDir())
	b := brokertest.Start(t, broker.Config{Listen: "127.0.0.1:0", Users: map[string]string{"probe@site-a": "s3cret", "scheduler": "pw2"},
		CertFile: cert, KeyFile: key}, testLogger(t))
	url := "tls://" + b.Addr()
	fast := func(user, pass string) Config {
		return Config{BrokerURL: url, CAFile: cert, Username: user, Password: pass,
			MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, ConnectTimeout: 2 * time.Second}
	}

	testCredentials(t, fast, "bad user name or password")
}

// testCredentials runs against a broker that knows the users probe@site-a (password
// s3cret) and scheduler (pw2): a subscriber as scheduler gets what a
// publisher as probe@site-a sends, and testRefusedCredentials passes with want.
func testCredentials(t *testing.T, cfg func(user, pass string) Config, want string) {
	t.Helper()
	got := make(chan string, 4)
	sub, err := NewSubscriber(t.Context(), cfg("scheduler", "pw2"), SubscriberOptions{Topics: []string{TopicLatencyAll}},
		func(topic string, _ []byte) { got <- topic }, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(context.Background())
	waitFor(t, sub.Ready(), 10*time.Second)
	publishOne(t, cfg("probe@site-a", "s3cret"), got)
	testRefusedCredentials(t, cfg, "probe@site-a", "s3cret", want)
}

// testRefusedCredentials checks that a broker requiring a password refuses a
// wrong password for user, an unknown user (with user's password) and no
// credentials, to a publisher and to a subscriber, and that both errors say
// want; cfg builds a client configuration for a user and password.
func testRefusedCredentials(t *testing.T, cfg func(user, pass string) Config, user, pass, want string) {
	t.Helper()
	for _, tt := range []struct{ name, user, pass string }{
		{"wrong password", user, pass + "-guess"},
		{"unknown user", "mallory", pass},
		{"no credentials", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelWarn}))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			pub, err := NewPublisher(ctx, cfg(tt.user, tt.pass), PublisherOptions{}, prometheus.NewRegistry(), log)
			if err != nil {
				t.Fatal(err)
			}
			if err := pub.PublishLatency(report(2)); err != nil {
				t.Fatal(err)
			}
			fctx, fcancel := context.WithTimeout(ctx, time.Second)
			defer fcancel()
			err = pub.Flush(fctx)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("publish with %s: error %v, want it to say %q", tt.name, err, want)
			}
			t.Logf("publisher: %v", err)
			sub, err := NewSubscriber(ctx, cfg(tt.user, tt.pass), SubscriberOptions{}, func(string, []byte) {}, prometheus.NewRegistry(), log)
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-sub.Ready():
				t.Fatal("subscriber with bad credentials subscribed")
			case <-time.After(500 * time.Millisecond):
			}
			if err := sub.LastError(); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("subscriber's last error %v, want it to say %q", err, want)
			}
			cancel()
			// Each kind of failure is logged once at warning level, not once per retry.
			if n := strings.Count(logs.String(), want); n < 1 || n > 2 {
				t.Errorf("%q logged %d times at warning level (one publisher and one subscriber):\n%s", want, n, logs.String())
			}
		})
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
