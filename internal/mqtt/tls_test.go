package mqtt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ning-edge/ning/internal/broker"
)

func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ning test"},
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
// and password; the same self-signed certificate is CA, server and client.
func TestPublishMutualTLSWithPassword(t *testing.T) {
	cert, key := writeCert(t, t.TempDir())
	b, err := broker.New(broker.Config{Listen: "127.0.0.1:0", Users: map[string]string{"probe": "pw"},
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
	pub, err := NewPublisher(t.Context(), Config{BrokerURL: "tls://" + b.Addr(), CAFile: cert, CertFile: cert, KeyFile: key,
		Username: "probe", Password: "pw"}, PublisherOptions{}, prometheus.NewRegistry(), testLogger(t))
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
		t.Fatal("nothing arrived over TLS")
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
