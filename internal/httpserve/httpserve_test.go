package httpserve

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestOpsMuxServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "ning_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	var unhealthy error
	mux := OpsMux(reg, func() error { return unhealthy })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, "test", ln, mux, Options{}, slog.New(slog.DiscardHandler)) }()
	base := "http://" + ln.Addr().String()
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "ning_test_total 1") {
		t.Errorf("/metrics: %d %q", code, body)
	}
	unhealthy = errors.New("no round for 1m")
	if code, body := get(t, base+"/healthz"); code != 503 || !strings.Contains(body, "no round for 1m") {
		t.Errorf("unhealthy /healthz: %d %q", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func TestSlowClientIsCutOff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = Serve(t.Context(), "test", ln, OpsMux(prometheus.NewRegistry(), nil),
			Options{ReadTimeout: 300 * time.Millisecond}, slog.New(slog.DiscardHandler))
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Send half a request line and stall: the server must close the connection.
	if _, err := conn.Write([]byte("GET /hea")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("want the server to close a stalled connection, got %v", err)
	}
}

// TestStopWithSilentConnection: a connection opened but never used (what a
// client's transport leaves when its request is cancelled mid-dial) must not
// fail the graceful stop. net/http closes such a connection only once it is
// 5 s old; with a 5 s grace period the stop failed with "context deadline
// exceeded" (TestExtenderBurst in CI).
func TestStopWithSilentConnection(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &acceptSignal{Listener: inner, accepted: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, "test", ln, http.NotFoundHandler(), Options{}, slog.New(slog.DiscardHandler))
	}()
	conn, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	<-ln.accepted // the server holds the connection, not the listener's backlog
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stopping with a silent connection open: %v", err)
	}
}

// acceptSignal is a listener that says when it has accepted a connection.
type acceptSignal struct {
	net.Listener
	accepted chan struct{}
}

func (l *acceptSignal) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		select {
		case l.accepted <- struct{}{}:
		default:
		}
	}
	return c, err
}

func TestTLSNeedsBothFiles(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = Serve(t.Context(), "test", ln, http.NotFoundHandler(), Options{CertFile: "c.pem"}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "both a certificate and a key") {
		t.Fatalf("want a clear error, got %v", err)
	}
}
