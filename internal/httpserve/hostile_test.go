package httpserve_test

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ning-edge/ning/internal/httpserve"
	"github.com/ning-edge/ning/internal/httpserve/hostiletest"
)

// TestHostileClients runs the hostile clients against OpsMux behind Serve
// with short timeouts.
func TestHostileClients(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- httpserve.Serve(t.Context(), "test", ln, httpserve.OpsMux(prometheus.NewRegistry(), nil),
			httpserve.Options{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: time.Second}, slog.New(slog.DiscardHandler))
	}()
	hostiletest.Run(t, hostiletest.Target{
		Addr: ln.Addr().String(),
		OK:   hostiletest.Request{Method: "GET", Path: "/healthz"},
		WrongMethods: []hostiletest.Request{
			{Method: "POST", Path: "/healthz", Body: "{}"}, {Method: "DELETE", Path: "/metrics"}, {Method: "PUT", Path: "/metrics", Body: "x"},
		},
		Cut: 3 * time.Second,
	})
	select {
	case err := <-done:
		t.Fatalf("the server stopped: %v", err)
	default:
	}
}
