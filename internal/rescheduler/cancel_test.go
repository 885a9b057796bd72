package rescheduler

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/topology"
)

// TestDecideStopsWhenCancelled: a cycle's context ends (shutdown, or the
// Lease lost to another replica) while the mover plans a workload whose
// plan takes seconds (100 sites, a per-replica rate limit). decide must
// return within 100 ms of the cancel, propose nothing and count no planning
// failure, so neither the shutdown nor the hand-over waits on the plan.
func TestDecideStopsWhenCancelled(t *testing.T) {
	const bound = 100 * time.Millisecond
	p := placement.RandomProblem(rand.New(rand.NewPCG(23, 100)), placement.RandomOptions{Sites: 100, Replicas: 50, PerReplicaShare: 0.06})
	clk := clocktesting.NewFakeClock(t0)
	store := topology.NewStore(topology.Config{}, clk)
	var nodes []*v1.Node
	for i, site := range p.Sites {
		nodes = append(nodes, makeNode(site+"-0", site).obj())
		if err := store.SetTraffic(site, p.Traffic[i], time.Time{}, true); err != nil {
			t.Fatal(err)
		}
		for j, to := range p.Sites {
			if i != j {
				if err := store.SetStaticRTT(site, to, p.RTT[i][j]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	var pods []*v1.Pod
	for i := range p.Replicas {
		pods = append(pods, makePod(fmt.Sprintf("web-%d", i)).on(nodes[0].Name).owner("ReplicaSet", "web").obj())
	}
	cfg := DefaultConfig()
	cfg.HoldCycles = 1
	cfg.PerReplicaRPS = p.PerReplicaRPS
	m := testMetrics(t)
	mv := newMover(cfg, store, m, discard(), clk)
	v := newView(nodes, pods, store, cfg.SiteLabel)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		props []proposal
		at    time.Time
	}
	done := make(chan result, 1)
	go func() {
		props := mv.decide(ctx, v, workloads(pods, cfg.SchedulerName))
		done <- result{props, time.Now()}
	}()
	var r result
	select {
	case r = <-done:
		t.Fatalf("decide ended (%d proposals) before the cancel: the plan no longer takes long enough for this test", len(r.props))
	case <-time.After(300 * time.Millisecond):
	}
	cancelled := time.Now()
	cancel()
	select {
	case r = <-done:
	case <-time.After(time.Minute):
		t.Fatal("decide did not return within a minute of the cancel")
	}
	if took := r.at.Sub(cancelled); took > bound {
		t.Errorf("decide returned %v after the cancel; want within %v", took, bound)
	}
	if len(r.props) != 0 {
		t.Errorf("decide proposed %d evictions after its context ended", len(r.props))
	}
	if n := testutil.ToFloat64(m.Decisions.WithLabelValues("plan_failed")); n != 0 {
		t.Errorf("a cancelled plan counted as %v planning failures", n)
	}
}
