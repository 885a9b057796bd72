package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/ning-edge/ning/internal/testcluster"
	"github.com/ning-edge/ning/internal/topology"
)

// cluster is what both benchmarks run on: a control plane, ready nodes
// spread over sites, and a store holding a random edge topology for them.
type cluster struct {
	session *testcluster.Session
	cp      *testcluster.ControlPlane
	sites   []string
	store   *topology.Store
}

// setUp checks and defaults the options, then builds the cluster. The caller
// closes c.session.
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
	c = &cluster{session: testcluster.NewSession("bench", o.Log)}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("control plane: %v", r)
		}
		if err != nil {
			c.session.Close()
			c = nil
		}
	}()
	start := time.Now()
	c.cp = testcluster.Start(c.session)
	o.Log.Info("control plane up", "seconds", time.Since(start).Seconds())
	c.sites = make([]string, o.Sites)
	for i := range c.sites {
		c.sites[i] = fmt.Sprintf("site-%03d", i)
	}
	start = time.Now()
	if err := parallel(ctx, o.Nodes, 32, func(ctx context.Context, i int) error {
		_, err := testcluster.CreateReadyNode(ctx, c.cp.Client, testcluster.Node{Name: fmt.Sprintf("node-%05d", i), Site: c.sites[i%o.Sites]})
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

// compare schedules the same pods through each of two schedulers (by
// schedulerName) o.Rounds times, alternating which goes first, and returns
// the mean seconds each took.
func compare(ctx context.Context, c *cluster, o SchedulerOptions, a, b string) (map[string]ProfileResult, error) {
	seconds := map[string]float64{}
	for r := range o.Rounds {
		order := []string{a, b}
		if r%2 == 1 {
			order[0], order[1] = b, a
		}
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
