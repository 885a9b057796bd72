package rescheduler

import (
	"context"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/httpserve"
)

// RunConfig is everything `ning rescheduler` runs with; the command builds
// it from its flags and calls Run.
type RunConfig struct {
	Client kubernetes.Interface
	Store  Store
	Config Config
	// Leader, when not nil, runs the rescheduler only while this replica
	// holds the Lease it names (Identity filled in).
	Leader *LeaderConfig
	// Listener, when not nil, serves /healthz and /metrics (the
	// rescheduler's metrics and Extra).
	Listener net.Listener
	Extra    prometheus.Gatherer
	Log      *slog.Logger
}

// Run runs the rescheduler until ctx ends; each leadership term starts
// from fresh caches.
func Run(ctx context.Context, c RunConfig) error {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		return err
	}
	log := c.Log
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
	return httpserve.RunWith(ctx, "rescheduler", c.Listener, httpserve.OpsMux(g, nil), httpserve.Options{}, log, func(ctx context.Context) error {
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
