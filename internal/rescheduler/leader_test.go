package rescheduler

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/testcluster"
)

// cutLease fails this replica's requests for the election Lease while cut
// is set, as a partition between it and the apiserver would; its other
// requests (pods, evictions) still go through, so a replica that kept
// acting after losing the Lease would be seen evicting. Once crashed, it
// fails every request, as a dead process sends none; dieAt, if set, crashes
// it at the first request it matches, before that request is sent.
type cutLease struct {
	rt           http.RoundTripper
	path         string
	cut, crashed *atomic.Bool
	dieAt        func(*http.Request) bool
}

func (c cutLease) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.dieAt != nil && c.dieAt(r) {
		c.crashed.Store(true)
	}
	if c.crashed.Load() {
		return nil, errors.New("the replica has crashed")
	}
	if c.cut.Load() && strings.HasPrefix(r.URL.Path, c.path) {
		return nil, errors.New("partitioned from the apiserver")
	}
	return c.rt.RoundTrip(r)
}

// replica is one rescheduler process: its client, its fake clock (which
// drives its cycles), its metrics and its Lead loop.
type replica struct {
	name    string
	clock   *clocktesting.FakeClock
	reg     *prometheus.Registry
	m       *Metrics
	cut     atomic.Bool
	crashed atomic.Bool
	stopped chan error
}

// TestLeaderHandOver runs two replicas against a real apiserver under
// leader election, their cycles driven by fake clocks. The leader evicts
// after HoldCycles; once it is cut from its Lease it stops acting (no
// cycle runs however its clock moves), and the replica that takes
// the Lease over starts afresh: it evicts only after HoldCycles cycles of
// its own, never a pod already evicted, one at a time.
func TestLeaderHandOver(t *testing.T) { testLeaderHandOver(t, false) }

// TestLeaderCrashBeforeEviction: the leader crashes after deciding to evict
// and before its eviction reaches the apiserver. The next leader comes to
// the same decision after HoldCycles of its own and evicts that once: one
// eviction in all, as without the crash.
func TestLeaderCrashBeforeEviction(t *testing.T) { testLeaderHandOver(t, true) }

func testLeaderHandOver(t *testing.T, crashAtEviction bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cp := testcluster.Start(t)
	for _, n := range []testcluster.Node{{Name: "a-0", Site: "a"}, {Name: "b-0", Site: "b"}, {Name: "c-0", Site: "c"}} {
		if _, err := testcluster.CreateReadyNode(ctx, cp.Client, n); err != nil {
			t.Fatal(err)
		}
	}
	// Three replicas of web on a-0; every request enters at c.
	for i := range 3 {
		p := makePod("web-"+string(rune('0'+i))).on("a-0").owner("ReplicaSet", "web").obj()
		createPod(ctx, t, cp.Client, p)
	}
	cfg := DefaultConfig()
	cfg.NodeDownAfter = time.Hour // the healer has nothing to do here
	// No cooldown: b would restore a's move from its Event and wait it out
	// (TestReschedulerBounces in test/integration checks that); here only
	// the holds matter.
	cfg.MoveCooldown = 0
	leader := LeaderConfig{Namespace: "kube-system", Name: "ning-rescheduler", LeaseDuration: 3 * time.Second,
		RenewDeadline: 2 * time.Second, RetryPeriod: 250 * time.Millisecond}

	start := func(name string) *replica {
		r := &replica{name: name, clock: clocktesting.NewFakeClock(time.Now()), reg: prometheus.NewRegistry(), stopped: make(chan error, 1)}
		var err error
		if r.m, err = NewMetrics(r.reg); err != nil {
			t.Fatal(err)
		}
		rc := rest.CopyConfig(cp.Config)
		var dieAt func(*http.Request) bool
		if crashAtEviction && name == "a" {
			dieAt = func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/eviction") }
		}
		rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return cutLease{rt: rt, path: "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", cut: &r.cut, crashed: &r.crashed, dieAt: dieAt}
		}
		client, err := kubernetes.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		store := lineStore(t, r.clock, map[string]float64{"c": 100}, nil)
		lc := leader
		lc.Identity = name
		go func() {
			r.stopped <- Lead(ctx, client, lc, discard(), func(ctx context.Context) {
				rs, err := New(client, store, cfg, r.m, discard(), r.clock)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				if err := rs.Run(ctx); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			})
		}()
		return r
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			return cond(), nil
		}); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	leading := func(r *replica) bool { return testutil.ToFloat64(r.m.Leader) == 1 }
	evicted := func(r *replica) float64 {
		return testutil.ToFloat64(r.m.Evictions.WithLabelValues("traffic", string(resultEvicted)))
	}
	// cycle steps r's clock by one interval, once both its loops wait on
	// it, and waits until the rescheduling cycle that tick starts is done.
	cycle := func(r *replica) {
		t.Helper()
		waitFor(r.name+"'s loops", func() bool { return r.clock.Waiters() == 2 })
		before := cycles(t, r.reg)
		r.clock.Step(cfg.Interval)
		waitFor(r.name+"'s cycle", func() bool { return cycles(t, r.reg) > before })
	}
	terminating := func() []string {
		pods, err := cp.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				out = append(out, p.Name)
			}
		}
		return out
	}

	// holdThenEvict runs HoldCycles of r's cycles: it evicts nothing until
	// the last (its holds start from zero), then one pod.
	holdThenEvict := func(r *replica) {
		t.Helper()
		for range cfg.HoldCycles - 1 {
			cycle(r)
		}
		if n := evicted(r); n != 0 {
			t.Fatalf("%s evicted %v pods before HoldCycles cycles of its own", r.name, n)
		}
		cycle(r)
		if n := evicted(r); n != 1 {
			t.Fatalf("%s evicted %v pods after HoldCycles, want 1", r.name, n)
		}
	}

	a := start("a")
	waitFor("a to lead", func() bool { return leading(a) })
	b := start("b")
	var first []string
	wantA := 1.0
	if crashAtEviction {
		for range cfg.HoldCycles {
			cycle(a)
		}
		if n, gone := evicted(a), terminating(); !a.crashed.Load() || n != 0 || len(gone) != 0 {
			t.Fatalf("a crashed %t, evicted %v, terminating pods %v; want a crash at its eviction request, nothing evicted", a.crashed.Load(), n, gone)
		}
		wantA = 0
	} else {
		holdThenEvict(a)
		if first = terminating(); len(first) != 1 {
			t.Fatalf("terminating pods after a's eviction: %v, want one", first)
		}
		// As the kubelet would: the evicted pod goes away.
		if err := cp.Client.CoreV1().Pods("default").Delete(ctx, first[0], metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
			t.Fatal(err)
		}
		a.cut.Store(true)
	}
	// Leader drops to 0 once both of a's loops have returned.
	waitFor("a to stop acting", func() bool { return !leading(a) })
	aCycles := cycles(t, a.reg)
	// Whatever time passes for a, it does nothing more.
	for range cfg.HoldCycles + 1 {
		a.clock.Step(cfg.SettleTimeout)
	}
	waitFor("b to lead", func() bool { return leading(b) })
	holdThenEvict(b) // a's holds do not carry over
	second := terminating()
	if len(second) != 1 || (len(first) == 1 && second[0] == first[0]) {
		t.Fatalf("terminating pods after b's eviction: %v, want one other than %v", second, first)
	}
	// b waits for that replacement; a stays out.
	cycle(b)
	if na, nb := evicted(a), evicted(b); na != wantA || nb != 1 {
		t.Fatalf("evictions: a %v, b %v; want %v and 1", na, nb, wantA)
	}
	if n := cycles(t, a.reg); n != aCycles {
		t.Errorf("a ran %d cycles after losing the Lease", n-aCycles)
	}
	cancel()
	for _, r := range []*replica{a, b} {
		if err := <-r.stopped; err != nil {
			t.Errorf("%s: Lead: %v", r.name, err)
		}
	}
}

// cycles is how many rescheduling cycles reg's rescheduler has finished.
func cycles(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	return samples(t, reg, "ning_rescheduler_cycle_duration_seconds")
}

// samples is how many observations the histogram name in reg holds.
func samples(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}
