package broker

import (
	"context"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ning-edge/ning/internal/httpserve"
)

// RunConfig is what `ning broker` runs with; the command builds it from
// its flags and calls Run.
type RunConfig struct {
	Config Config
	Log    *slog.Logger
	// MetricsListen is the host:port serving /healthz and /metrics (empty:
	// none).
	MetricsListen string
}

// Run starts the broker and serves it, and its metrics, until ctx ends.
func Run(ctx context.Context, c RunConfig) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c.Config.Registerer = reg
	var ln net.Listener
	if c.MetricsListen != "" {
		var err error
		if ln, err = httpserve.Listen("metrics-listen", c.MetricsListen); err != nil {
			return err
		}
	}
	b, err := New(c.Config, c.Log)
	if err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		return err
	}
	if err := b.Start(); err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		return err
	}
	c.Log.Info("broker listening", "addr", b.Addr(), "tls", c.Config.CertFile != "", "users", len(c.Config.Users),
		"identityKey", len(c.Config.IdentityKey) > 0, "dataDir", c.Config.DataDir)
	return httpserve.RunWith(ctx, "broker metrics", ln, httpserve.OpsMux(reg, nil), httpserve.Options{}, c.Log, b.Run)
}
