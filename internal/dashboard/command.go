package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/ning-edge/ning/internal/httpserve"
	"github.com/ning-edge/ning/internal/source"
	"github.com/ning-edge/ning/internal/topology"
)

// View is what `ning dashboard` and `ning status` watch: the cluster, and
// the store their sources feed.
type View struct {
	Client  kubernetes.Interface
	Store   *topology.Store
	Sources source.Sources
	Options Options
}

// RunConfig is what `ning dashboard` runs with; the command builds it from
// its flags and calls Run.
type RunConfig struct {
	View View
	// Listen is the address of the page, /api/snapshot, /healthz and
	// /metrics (Gatherer's).
	Listen   string
	Gatherer prometheus.Gatherer
	Log      *slog.Logger
	// Explain, when set, serves the workloads' explain pages from the
	// view (ning dashboard passes explain.Pages; this package cannot build
	// them: internal/explain builds on it).
	Explain func(View) Explainer
}

// explained is a Source with explain pages.
type explained struct {
	Source
	Explainer
}

// Run watches the view and serves the dashboard on c.Listen until ctx ends.
func Run(ctx context.Context, c RunConfig) error {
	col, err := NewCollector(c.View.Client, c.View.Store, c.View.Options)
	if err != nil {
		return err
	}
	return source.Feed(ctx, c.View.Sources, c.View.Store, func(ctx context.Context) error {
		ln, err := httpserve.Listen("listen", c.Listen)
		if err != nil {
			return err
		}
		mux := httpserve.OpsMux(c.Gatherer, col.Healthy)
		var src Source = col
		if c.Explain != nil {
			src = explained{col, c.Explain(c.View)}
		}
		mux.Handle("/", Handler(src))
		c.Log.Info("serving the dashboard", "url", "http://"+ln.Addr().String()+"/")
		return httpserve.RunWith(ctx, "dashboard", ln, mux, httpserve.Options{}, c.Log, col.Run)
	})
}

// StatusConfig is what `ning status` runs with.
type StatusConfig struct {
	View View
	// Timeout bounds the wait for the cluster to be listed; Settle is how
	// long MQTT reports are collected first (0: none).
	Timeout, Settle time.Duration
	// Workload, when not empty, selects one workload (namespace/name);
	// Output is "table" or "json" (the snapshot of GET /api/snapshot).
	Workload, Output string
	Out              io.Writer
}

// Status lists the cluster once and prints its snapshot to c.Out.
func Status(ctx context.Context, c StatusConfig) error {
	s, err := snapshotOnce(ctx, c)
	if err != nil {
		return err
	}
	if c.Output == "table" {
		return WriteTable(c.Out, s, c.Workload)
	}
	if s, err = s.Select(c.Workload); err != nil {
		return err
	}
	enc := json.NewEncoder(c.Out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// snapshotOnce lists the cluster once and returns its snapshot.
func snapshotOnce(ctx context.Context, c StatusConfig) (Snapshot, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	col, err := NewCollector(c.View.Client, c.View.Store, c.View.Options)
	if err != nil {
		return Snapshot{}, err
	}
	stopSources, err := source.Start(ctx, c.View.Sources, c.View.Store)
	if err != nil {
		return Snapshot{}, err
	}
	defer func() { _ = stopSources() }() // the snapshot is taken; a failed close changes nothing in it
	done := make(chan error, 1)
	go func() { done <- col.Run(ctx) }()
	wait, cancelWait := context.WithTimeoutCause(ctx, c.Timeout, fmt.Errorf("the cluster was not listed within --timeout %v", c.Timeout))
	defer cancelWait()
	if err := col.WaitSynced(wait); err != nil {
		cancel()
		<-done // Run fails for the same cause
		return Snapshot{}, err
	}
	if c.View.Sources.MQTT != nil && c.Settle > 0 {
		select {
		case <-time.After(c.Settle):
		case <-ctx.Done():
			return Snapshot{}, fmt.Errorf("waiting for MQTT reports: %w", context.Cause(ctx))
		}
	}
	s := col.Snapshot()
	cancel()
	if err := <-done; err != nil {
		return Snapshot{}, err
	}
	return s, nil
}
