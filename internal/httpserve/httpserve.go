// Package httpserve is the HTTP server every ning component uses for its
// endpoints: timeouts against slow clients, a header size limit, optional
// TLS, graceful shutdown, and the common /healthz and /metrics handlers.
package httpserve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options shape the server.
type Options struct {
	// CertFile and KeyFile, both set, serve HTTPS.
	CertFile, KeyFile string
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout; zero
	// takes 5 s, 10 s, 10 s, 120 s.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// ShutdownTimeout bounds the graceful stop; zero takes 10 s. It must
	// exceed the 5 s net/http waits before it closes a connection that was
	// opened but never sent a request (a client's transport leaves one behind
	// when its request is cancelled during the dial), or such a connection
	// makes every stop fail.
	ShutdownTimeout time.Duration
}

// Serve serves h on ln until ctx is done, then shuts down gracefully. name
// says which server failed in errors.
func Serve(ctx context.Context, name string, ln net.Listener, h http.Handler, o Options, log *slog.Logger) error {
	if (o.CertFile == "") != (o.KeyFile == "") {
		return errors.New("TLS needs both a certificate and a key")
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: orDuration(o.ReadHeaderTimeout, 5*time.Second),
		ReadTimeout:       orDuration(o.ReadTimeout, 10*time.Second),
		WriteTimeout:      orDuration(o.WriteTimeout, 10*time.Second),
		IdleTimeout:       orDuration(o.IdleTimeout, 120*time.Second),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
	}
	done := make(chan error, 1)
	go func() {
		if o.CertFile != "" {
			done <- srv.ServeTLS(ln, o.CertFile, o.KeyFile)
		} else {
			done <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-done:
		return fmt.Errorf("%s server: %w", name, err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), orDuration(o.ShutdownTimeout, 10*time.Second))
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		// Requests still running past the grace period are cut off.
		return errors.Join(fmt.Errorf("stopping the %s server: %w", name, err), srv.Close())
	}
	return nil
}

// Healthz answers "ok" while healthy returns nil and 503 with its error
// otherwise. A nil healthy is always healthy.
func Healthz(healthy func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if healthy != nil {
			if err := healthy(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = io.WriteString(w, "ok\n")
	})
}

// OpsMux returns a mux serving GET /healthz and GET /metrics (from g), to
// which a component adds its own handlers.
func OpsMux(g prometheus.Gatherer, healthy func() error) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", Healthz(healthy))
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return mux
}

func orDuration(v, d time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return d
}
