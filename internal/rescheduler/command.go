package rescheduler

import (
	"context"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/httpserve"
	"github.com/ning-edge/ning/internal/source"
	"github.com/ning-edge/ning/internal/topology"
)

// RunConfig is everything `ning rescheduler` runs with; the command builds
// it from its flags and calls Run.
type RunConfig struct {
	Client kubernetes.Interface
	// Store is what the rescheduler reads, fed by Sources while it runs.
	Store   *topology.Store
	Sources source.Sources
	Config  Config
	// Leader, when not nil, runs the rescheduler only while this replica
	// holds the Lease it names (Identity filled in).
	Leader *LeaderConfig
	// Listen, when not empty, is the address serving /healthz and /metrics
	// (the rescheduler's metrics and Extra).
	Listen string
	Extra  prometheus.Gatherer
	Log    *slog.Logger
}

// Run runs the rescheduler until ctx ends, its sources feeding its store;
// each leadership term starts from fresh caches.
func Run(ctx context.Context, c RunConfig) error {
	err := source.Feed(ctx, c.Sources, c.Store, func(ctx context.Context) error { return run(ctx, c) })
	if ctx.Err() != nil && err == nil {
		c.Log.Info("rescheduler stopped")
	}
	return err
}

func run(ctx context.Context, c RunConfig) error {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		return err
	}
	log := c.Log
	var ln net.Listener
	if c.Listen != "" {
		if ln, err = httpserve.Listen("listen", c.Listen); err != nil {
			return err
		}
		log.Info("serving /healthz and /metrics", "addr", ln.Addr().String())
	}
	term := func(ctx context.Context) error {
		r, err := New(c.Client, c.Store, c.Config, m, log, clock.RealClock{})
		if err != nil {
			return err
		}
		return r.Run(ctx)
	}
	g := prometheus.Gatherers{reg}
	if c.Extra != nil {
		g = append(g, c.Extra)
	}
	return httpserve.RunWith(ctx, "rescheduler", ln, httpserve.OpsMux(g, nil), httpserve.Options{}, log, func(ctx context.Context) error {
		if c.Leader == nil {
			return term(ctx)
		}
		return Lead(ctx, c.Client, *c.Leader, log, func(ctx context.Context) {
			if err := term(ctx); err != nil {
				log.Error("rescheduler", "err", err)
			}
		})
	})
}
