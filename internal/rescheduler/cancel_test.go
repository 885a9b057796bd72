package rescheduler

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/race"
	"github.com/ning-edge/ning/internal/testcluster"
	"github.com/ning-edge/ning/internal/topology"
)

// longPlan is a workload whose plan takes seconds: 250 replicas on one node
// of a 500-site cluster (a node per site), with a per-replica rate limit.
type longPlan struct {
	p     *placement.Problem
	store *topology.Store
	nodes []*v1.Node
	pods  []*v1.Pod
	cfg   Config
}

func newLongPlan(t *testing.T, clk *clocktesting.FakeClock) *longPlan {
	t.Helper()
	l := &longPlan{p: placement.RandomProblem(rand.New(rand.NewPCG(23, 500)), placement.RandomOptions{Sites: 500, Replicas: 250, PerReplicaShare: 3.0 / 250})}
	l.store = topology.NewStore(topology.Config{}, clk)
	for i, site := range l.p.Sites {
		l.nodes = append(l.nodes, makeNode(site+"-0", site).obj())
		if err := l.store.SetTraffic(site, l.p.Traffic[i], time.Time{}, true); err != nil {
			t.Fatal(err)
		}
		for j, to := range l.p.Sites {
			if i != j {
				if err := l.store.SetStaticRTT(site, to, l.p.RTT[i][j]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for i := range l.p.Replicas {
		l.pods = append(l.pods, makePod(fmt.Sprintf("web-%d", i)).on(l.nodes[0].Name).owner("ReplicaSet", "web").obj())
	}
	l.cfg = DefaultConfig()
	l.cfg.HoldCycles = 1
	l.cfg.PerReplicaRPS = l.p.PerReplicaRPS
	l.cfg.NodeDownAfter = time.Hour // the healer has nothing to do here
	return l
}

// stopsWithin runs work, cancels its context after the given time and
// requires it to return within bound of the cancel. running, called just
// before the cancel, reports whether the long part of the work is still
// running.
func stopsWithin(t *testing.T, after, bound time.Duration, work func(ctx context.Context), running func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan time.Time, 1)
	go func() {
		work(ctx)
		done <- time.Now()
	}()
	time.Sleep(after)
	if !running() {
		t.Fatal("the plan ended before the cancel: it no longer takes long enough for this test")
	}
	cancelled := time.Now()
	cancel()
	select {
	case at := <-done:
		if took := at.Sub(cancelled); took > bound {
			t.Errorf("returned %v after the cancel; want within %v", took, bound)
		}
	case <-time.After(time.Minute):
		t.Fatal("did not return within a minute of the cancel")
	}
}

// TestDecideStopsWhenCancelled: a cycle's context ends (shutdown, or the
// Lease lost to another replica) while the mover plans a workload whose
// plan takes seconds. decide must return within 100 ms of the cancel (1 s
// under the race detector),
// propose nothing and count no planning failure.
func TestDecideStopsWhenCancelled(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	l := newLongPlan(t, clk)
	m := testMetrics(t)
	mv := newMover(l.cfg, l.store, m, discard(), clk)
	v := newView(l.nodes, l.pods, l.store, l.cfg.SiteLabel)
	var props []proposal
	finished := make(chan struct{})
	stopsWithin(t, 100*time.Millisecond, race.Scale(100*time.Millisecond), func(ctx context.Context) {
		defer close(finished)
		props = mv.decide(ctx, v, workloads(l.pods, l.cfg.SchedulerName))
	}, func() bool {
		select {
		case <-finished:
			return false
		default:
			return true
		}
	})
	if len(props) != 0 {
		t.Errorf("decide proposed %d evictions after its context ended", len(props))
	}
	if n := testutil.ToFloat64(m.Decisions.WithLabelValues("plan_failed")); n != 0 {
		t.Errorf("a cancelled plan counted as %v planning failures", n)
	}
}

// TestRunStopsMidPlan runs the rescheduler against a real apiserver with the
// long workload, starts a cycle and ends Run's context while the cycle
// plans: Run (informers, event broadcaster and both loops) must return within
// a second, a fraction of the plan's time. Elect waits for Run in the same
// way when the Lease is lost, so a hand-over does not wait on the plan either.
func TestRunStopsMidPlan(t *testing.T) {
	ctx := t.Context()
	cp := testcluster.Start(t)
	clk := clocktesting.NewFakeClock(time.Now())
	l := newLongPlan(t, clk)
	for _, n := range l.nodes {
		if _, err := testcluster.CreateReadyNode(ctx, cp.Client, testcluster.Node{Name: n.Name, Site: n.Labels[v1.LabelTopologyZone]}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range l.pods {
		createPod(ctx, t, cp.Client, p)
	}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(cp.Client, l.store, l.cfg, m, discard(), clk)
	if err != nil {
		t.Fatal(err)
	}
	stepped := make(chan struct{})
	stopsWithin(t, 0, time.Second, func(ctx context.Context) {
		go func() {
			// Once both loops wait on the clock, start a cycle.
			if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
				return clk.Waiters() == 2, nil
			}); err == nil {
				clk.Step(l.cfg.Interval)
				close(stepped)
			}
		}()
		if err := r.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}, func() bool {
		select {
		case <-stepped:
		case <-time.After(time.Minute):
			t.Fatal("the rescheduler's loops never started")
		}
		time.Sleep(100 * time.Millisecond) // into the plan
		return cycles(t, reg) == 0
	})
}
