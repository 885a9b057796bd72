package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/google/go-cmp/cmp"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestParseUsers(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		{in: "# users\nalice:pw1\n\nbob:p:w\n", want: map[string]string{"alice": "pw1", "bob": "p:w"}},
		{in: "alice\n", wantErr: true},
		{in: "alice:\n", wantErr: true},
		{in: ":pw\n", wantErr: true},
		{in: "a:1\na:2\n", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseUsers([]byte(tt.in))
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseUsers(%q) err %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got); !tt.wantErr && diff != "" {
			t.Errorf("ParseUsers(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestNewRefusesOpenBrokerByDefault(t *testing.T) {
	if _, err := New(Config{Listen: "127.0.0.1:0"}, discard()); err == nil {
		t.Fatal("broker without users or --allow-anonymous started")
	}
}

// connect opens one MQTT 5 session and returns the CONNACK reason code.
func connect(t *testing.T, conn net.Conn, user, pass string) (byte, error) {
	t.Helper()
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	cp := &paho.Connect{ClientID: "t", KeepAlive: 10, CleanStart: true}
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
		cp.Password, cp.PasswordFlag = []byte(pass), true
	}
	ca, err := c.Connect(ctx, cp)
	if ca != nil {
		_ = c.Disconnect(&paho.Disconnect{})
		return ca.ReasonCode, nil
	}
	return 0, err
}

func TestAuth(t *testing.T) {
	b, err := New(Config{Listen: "127.0.0.1:0", Users: map[string]string{"admin": "pw"}}, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tests := []struct {
		name, user, pass string
		wantOK           bool
	}{
		{"right password", "admin", "pw", true},
		{"wrong password", "admin", "nope", false},
		{"unknown user", "mallory", "pw", false},
		{"anonymous", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", b.Addr())
			if err != nil {
				t.Fatal(err)
			}
			code, err := connect(t, conn, tt.user, tt.pass)
			ok := err == nil && code == 0
			if ok != tt.wantOK {
				t.Errorf("connected %v (code %d, err %v), want %v", ok, code, err, tt.wantOK)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	pool := writeSelfSigned(t, certFile, keyFile)
	b, err := New(Config{Listen: "127.0.0.1:0", AllowAnonymous: true, CertFile: certFile, KeyFile: keyFile}, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	conn, err := tls.Dial("tcp", b.Addr(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := connect(t, conn, "", ""); err != nil || code != 0 {
		t.Fatalf("TLS connect: code %d err %v", code, err)
	}
	if _, err := tls.Dial("tcp", b.Addr(), &tls.Config{ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}); err == nil {
		t.Error("untrusted certificate accepted")
	}
}

func writeSelfSigned(t *testing.T, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ning test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}
