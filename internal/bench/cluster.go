package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/ning-edge/ning/internal/devcluster"
	"github.com/ning-edge/ning/internal/nodesim"
	"github.com/ning-edge/ning/internal/topology"
)

// cluster is what both benchmarks run on: a control plane, ready nodes
// spread over sites, and a store holding a random edge topology for them.
type cluster struct {
	cp    *devcluster.Cluster
	sites []string
	store *topology.Store
}

// setUp checks and defaults the options, then builds the cluster. The caller
// calls c.close.
func setUp(ctx context.Context, o *SchedulerOptions) (c *cluster, err error) {
	if o.Nodes <= 0 || o.Pods <= 0 || o.Sites <= 0 || o.Sites > o.Nodes {
		return nil, fmt.Errorf("want nodes >= sites >= 1 and pods >= 1, got %d nodes, %d sites, %d pods", o.Nodes, o.Sites, o.Pods)
	}
	if o.PodsPerWorkload <= 0 {
		o.PodsPerWorkload = 50
	}
	if o.Rounds <= 0 {
		o.Rounds = 1
	}
	start := time.Now()
	cp, err := devcluster.Start(ctx, devcluster.Options{Log: o.Log})
	if err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	c = &cluster{cp: cp}
	defer func() {
		if err != nil {
			err = errors.Join(err, cp.Stop())
			c = nil
		}
	}()
	o.Log.Info("control plane up", "seconds", time.Since(start).Seconds())
	c.sites = make([]string, o.Sites)
	for i := range c.sites {
		c.sites[i] = fmt.Sprintf("site-%03d", i)
	}
	start = time.Now()
	if err := parallel(ctx, o.Nodes, 32, func(ctx context.Context, i int) error {
		_, err := nodesim.CreateReadyNode(ctx, c.cp.Client, nodesim.Node{Name: fmt.Sprintf("node-%05d", i), Site: c.sites[i%o.Sites]})
		return err
	}); err != nil {
		return nil, err
	}
	o.Log.Info("nodes created", "nodes", o.Nodes, "seconds", time.Since(start).Seconds())
	if c.store, err = benchStore(c.sites, o.Seed); err != nil {
		return nil, err
	}
	return c, nil
}

// close stops what runs on the cluster (cancel), then the cluster; a
// failure to stop it is logged, as the measurement is done by then.
func (c *cluster) close(cancel context.CancelFunc, log *slog.Logger) {
	cancel()
	if err := c.cp.Stop(); err != nil {
		log.Warn("stopping the control plane", "err", err)
	}
}

// compare schedules the same pods through each scheduler (by
// schedulerName) o.Rounds times, rotating which goes first (with two, they
// alternate), and returns the mean seconds each took.
func compare(ctx context.Context, c *cluster, o SchedulerOptions, profiles ...string) (map[string]ProfileResult, error) {
	seconds := map[string]float64{}
	for r := range o.Rounds {
		order := append(slices.Clone(profiles[r%len(profiles):]), profiles[:r%len(profiles)]...)
		for _, profile := range order {
			s, err := measure(ctx, c.cp.Client, profile, fmt.Sprintf("bench-%d-%s", r, profile), c.sites, o)
			if err != nil {
				return nil, fmt.Errorf("scheduler %s: %w", profile, err)
			}
			stats, err := schedulerStats(profile)
			if err != nil {
				return nil, err
			}
			o.Log.Info("scheduler measured", "profile", profile, "round", r, "seconds", s, "podsPerSecond", float64(o.Pods)/s,
				"cumulative", formatStats(stats))
			seconds[profile] += s
		}
	}
	out := map[string]ProfileResult{}
	for profile, s := range seconds {
		mean := s / float64(o.Rounds)
		out[profile] = ProfileResult{Seconds: mean, PodsPerSecond: float64(o.Pods) / mean}
	}
	return out, nil
}
