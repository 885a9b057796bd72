package integration

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/nodesim"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/rescheduler"
	"github.com/ning-edge/ning/internal/scheduler"
	"github.com/ning-edge/ning/internal/testcluster"
	"github.com/ning-edge/ning/internal/topology"
)

// perReplicaRPS is the serving limit of one replica in these tests, given to
// both the scheduler's TrafficLatency plugin and the rescheduler.
const perReplicaRPS = 40

const reschedInterval = 500 * time.Millisecond

// instance is one rescheduler replica competing for the lease.
type instance struct {
	reg    *prometheus.Registry
	m      *rescheduler.Metrics
	cancel context.CancelFunc
	done   chan error
}

type reschedEnv struct {
	*env
	sim       *nodesim.Simulator
	instances []*instance
}

// reschedOptions shape the rescheduler replicas of a test environment.
type reschedOptions struct {
	replicas int
	// lease is the leader election timing; the zero value takes 3 s, 2 s
	// and 500 ms, quick for the tests.
	lease rescheduler.LeaderConfig
	edit  func(*rescheduler.Config)
	// store, when set, is the scheduler's and rescheduler's store as it is;
	// by default a static one (a-b 10 ms, b-c 10 ms, a-c 20 ms, traffic at a).
	store *topology.Store
	// schedulerConfig, when set, renders the scheduler's configuration
	// from the kubeconfig path, instead of ning's default profile.
	schedulerConfig func(kubeconfig string) string
}

// startReschedEnv runs the control plane, simulated kubelets on nodes a-0 ..
// c-1, the ReplicaSet, Deployment and disruption controllers, ning's
// scheduler and two rescheduler replicas under leader election.
func startReschedEnv(t *testing.T) *reschedEnv {
	return startReschedEnvOn(t, testcluster.Start(t), reschedOptions{replicas: 2})
}

func startReschedEnvOn(t *testing.T, cp *testcluster.ControlPlane, ro reschedOptions) *reschedEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	store := ro.store
	if store == nil {
		store = topology.NewStore(topology.Config{}, clock.RealClock{})
		for _, l := range []struct {
			a, b string
			ms   float64
		}{{"a", "b", 10}, {"b", "c", 10}, {"a", "c", 20}} {
			if err := store.SetStaticRTT(l.a, l.b, l.ms); err != nil {
				t.Fatal(err)
			}
		}
		setTraffic(t, store, map[string]float64{"a": 100})
	}
	e := &reschedEnv{env: &env{cp: cp, c: cp.Client, store: store, ctx: ctx, site: map[string]string{}}}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e.sim = nodesim.New(cp.Client, nodesim.Options{RenewInterval: time.Second}, log.With("component", "nodesim"))
	for _, site := range []string{"a", "b", "c"} {
		for i := range 2 {
			name := fmt.Sprintf("%s-%d", site, i)
			if err := e.sim.AddNode(ctx, nodesim.Node{Name: name, Site: site}); err != nil {
				t.Fatal(err)
			}
			e.site[name] = site
		}
	}
	go func() { _ = e.sim.Run(ctx) }()
	if err := testcluster.StartWorkloadControllers(ctx, e.c); err != nil {
		t.Fatal(err)
	}
	if err := testcluster.StartDisruptionController(ctx, cp.Config); err != nil {
		t.Fatal(err)
	}
	cfg, err := scheduler.DefaultConfig(scheduler.ConfigParams{Kubeconfig: cp.Kubeconfig, PerReplicaRPS: perReplicaRPS})
	if err != nil {
		t.Fatal(err)
	}
	if ro.schedulerConfig != nil {
		cfg = ro.schedulerConfig(cp.Kubeconfig)
	}
	if _, err := scheduler.Start(ctx, cp.Dir, cfg, store); err != nil {
		t.Fatal(err)
	}
	rc := rescheduler.DefaultConfig()
	// Without a cooldown, so that a workload's moves follow each other as
	// soon as the last replacement is Ready (the convergence figures);
	// TestReschedulerBounces runs with one.
	rc.Interval, rc.HoldCycles, rc.PerReplicaRPS, rc.MoveCooldown = reschedInterval, 2, perReplicaRPS, 0
	if ro.edit != nil {
		ro.edit(&rc)
	}
	if ro.lease.LeaseDuration == 0 {
		ro.lease = rescheduler.LeaderConfig{LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond}
	}
	for i := range ro.replicas {
		in := &instance{reg: prometheus.NewRegistry(), done: make(chan error, 1)}
		if in.m, err = rescheduler.NewMetrics(in.reg); err != nil {
			t.Fatal(err)
		}
		ilog := log.With("component", fmt.Sprintf("rescheduler-%d", i))
		ictx, icancel := context.WithCancel(ctx)
		in.cancel = icancel
		lc := ro.lease
		lc.Namespace, lc.Name, lc.Identity = "kube-system", "ning-rescheduler", fmt.Sprintf("replica-%d", i)
		go func() {
			in.done <- rescheduler.Lead(ictx, e.c, lc, ilog, func(ctx context.Context) {
				r, err := rescheduler.New(e.c, store, rc, in.m, ilog, clock.RealClock{})
				if err == nil {
					err = r.Run(ctx)
				}
				if err != nil {
					ilog.Error("rescheduler", "err", err)
				}
			})
		}()
		e.instances = append(e.instances, in)
	}
	return e
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func setTraffic(t *testing.T, s *topology.Store, rps map[string]float64) {
	t.Helper()
	for _, site := range []string{"a", "b", "c"} {
		if err := s.SetTraffic(site, rps[site], time.Time{}, true); err != nil {
			t.Fatal(err)
		}
	}
}

// evictions sums an instance's evictions with the given reason (all if
// empty). A metrics error fails the test: a sentinel value would let two
// failed reads pass an equality check.
func (in *instance) evictions(t testing.TB, reason string) float64 {
	t.Helper()
	mfs, err := in.reg.Gather()
	if err != nil {
		t.Fatalf("reading the rescheduler's metrics: %v", err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "ning_rescheduler_evictions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := reason == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					match = true
				}
				if l.GetName() == "result" && l.GetValue() != "evicted" && l.GetValue() != "deleted" {
					match = false
					break
				}
			}
			if match {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func (in *instance) cycles(t testing.TB) uint64 {
	t.Helper()
	mfs, err := in.reg.Gather()
	if err != nil {
		t.Fatalf("reading the rescheduler's metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "ning_rescheduler_cycle_duration_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// leader waits until exactly one instance leads and returns it.
func (e *reschedEnv) leader(t *testing.T) (lead, other *instance) {
	t.Helper()
	err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		lead, other = nil, nil
		n := 0
		for _, in := range e.instances {
			if testutil.ToFloat64(in.m.Leader) == 1 {
				lead, n = in, n+1
			} else {
				other = in
			}
		}
		return n == 1, nil
	})
	if err != nil {
		t.Fatalf("no single leader: %v", err)
	}
	return lead, other
}

func (e *reschedEnv) createDeployment(t *testing.T, ns, name string, replicas int32, labels map[string]string, minAvailable int) {
	t.Helper()
	e.createDeploymentEdit(t, ns, name, replicas, labels, nil)
	if minAvailable > 0 {
		pdb := &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: policyv1.PodDisruptionBudgetSpec{
				MinAvailable: ptr.To(intstr.FromInt32(int32(minAvailable))),
				Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			},
		}
		if _, err := e.c.PolicyV1().PodDisruptionBudgets(ns).Create(e.ctx, pdb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// createDeploymentEdit creates a Deployment of pods labelled app=name and
// labels, with podSpec() changed by edit (when not nil).
func (e *reschedEnv) createDeploymentEdit(t *testing.T, ns, name string, replicas int32, labels map[string]string, edit func(*v1.PodSpec)) {
	t.Helper()
	podLabels := map[string]string{"app": name}
	for k, v := range labels {
		podLabels[k] = v
	}
	spec := podSpec()
	if edit != nil {
		edit(&spec)
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: podLabels}, Spec: spec},
		},
	}
	if _, err := e.c.AppsV1().Deployments(ns).Create(e.ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// placement counts a workload's running (bound, not terminating) pods per
// site, and how many of them are Ready.
func (e *reschedEnv) placement(ctx context.Context, ns, app string) (perSite map[string]int, ready, total int, err error) {
	return testcluster.Placement(ctx, e.c, ns, "app="+app, e.site)
}

// waitPlacement waits until the workload runs exactly as want, all Ready.
func (e *reschedEnv) waitPlacement(t *testing.T, ns, app string, want map[string]int, timeout time.Duration) {
	t.Helper()
	n := 0
	for _, v := range want {
		n += v
	}
	var got map[string]int
	err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var ready, total int
		var err error
		got, ready, total, err = e.placement(ctx, ns, app)
		if err != nil {
			return false, err
		}
		if ready != n || total != n || len(got) != len(want) {
			return false, nil
		}
		for s, v := range want {
			if got[s] != v {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("%s/%s: want %v all Ready, have %v: %v", ns, app, want, got, err)
	}
}

// watchSafety samples the workload until stop is closed and reports the
// fewest Ready pods seen and whether a site in keep ever had no pod.
func (e *reschedEnv) watchSafety(ns, app string, keep []string, stop <-chan struct{}) (result func() (minReady int, emptied []string)) {
	var mu sync.Mutex
	minReady := 1 << 30
	emptied := map[string]bool{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			perSite, ready, _, err := e.placement(e.ctx, ns, app)
			if err != nil {
				continue
			}
			mu.Lock()
			minReady = min(minReady, ready)
			for _, s := range keep {
				if perSite[s] == 0 {
					emptied[s] = true
				}
			}
			mu.Unlock()
		}
	}()
	return func() (int, []string) {
		<-done
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for s := range emptied {
			out = append(out, s)
		}
		return minReady, out
	}
}

func planFor(t *testing.T, traffic map[string]float64, replicas int) map[string]int {
	t.Helper()
	sites := []string{"a", "b", "c"}
	p := &placement.Problem{Sites: sites, Traffic: []float64{traffic["a"], traffic["b"], traffic["c"]},
		Capacity: []int{placement.Unlimited, placement.Unlimited, placement.Unlimited},
		RTT:      [][]float64{{0, 10, 20}, {10, 0, 10}, {20, 10, 0}}, Replicas: replicas, PerReplicaRPS: perReplicaRPS}
	x, err := placement.Plan(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	return x.Map(sites)
}

// TestRescheduler runs ning's scheduler and two rescheduler replicas against a
// real apiserver with the real ReplicaSet, Deployment and disruption
// controllers and simulated kubelets, and checks, in order: replicas follow a
// traffic shift without breaking the PodDisruptionBudget or emptying a site
// with traffic, and then stay put (no evict/reschedule loop); RTT noise below
// the threshold moves nothing; a broken delay constraint is repaired; a node
// that stops heartbeating has its pods replaced elsewhere; only the leader
// acts, and the other replica takes over when it stops.
func TestRescheduler(t *testing.T) {
	e := startReschedEnv(t)
	lead, standby := e.leader(t)
	ns := e.namespace(t)

	// 4 replicas, at most one down at a time.
	e.createDeployment(t, ns, "web", 4, nil, 3)
	start := planFor(t, map[string]float64{"a": 100}, 4)
	e.waitPlacement(t, ns, "web", start, 60*time.Second)
	t.Logf("initial placement with all traffic at a: %v", start)

	t.Run("traffic shift", func(t *testing.T) {
		shifted := map[string]float64{"a": 10, "c": 100}
		want := planFor(t, shifted, 4)
		if want["a"] < 1 || want["c"] < 2 {
			t.Fatalf("plan after the shift is %v: want most replicas at c and one kept at a", want)
		}
		stop := make(chan struct{})
		// a has pods and keeps traffic: it must never be emptied.
		safety := e.watchSafety(ns, "web", []string{"a"}, stop)
		before, cycles0 := lead.evictions(t, "traffic"), lead.cycles(t)
		t0 := time.Now()
		setTraffic(t, e.store, shifted)
		e.waitPlacement(t, ns, "web", want, 90*time.Second)
		took, cycles := time.Since(t0), lead.cycles(t)-cycles0
		moves := lead.evictions(t, "traffic") - before
		t.Logf("converged to %v in %.1f s, %d cycles of %v, %.0f evictions", want, took.Seconds(), cycles, reschedInterval, moves)
		if bound := uint64(moves)*uint64(2+4) + 10; cycles > bound {
			t.Errorf("%d cycles to converge, want at most %d (hold 2 + settle per move)", cycles, bound)
		}
		// Stay put: no further eviction over 10 more cycles.
		time.Sleep(10 * reschedInterval)
		close(stop)
		if after := lead.evictions(t, "traffic"); after != before+moves {
			t.Errorf("evictions went on after convergence: %.0f more (an evict/reschedule loop)", after-before-moves)
		}
		minReady, emptied := safety()
		if minReady < 3 {
			t.Errorf("only %d Ready pods at one point; the PodDisruptionBudget allows no fewer than 3", minReady)
		}
		if len(emptied) > 0 {
			t.Errorf("sites with traffic left without a pod: %v", emptied)
		}
	})

	t.Run("noise below the threshold", func(t *testing.T) {
		// More traffic at c than its three replicas serve: the overflow goes
		// to a (20 ms) as placed, or would go to b (10 ms away from both a
		// and c) if a's replica moved there, which ties at the static RTTs.
		// Measured RTTs, through the store's moving average, then jitter by
		// up to ±30 % for 20 cycles: the two placements swap places by a
		// fraction of a millisecond. ning must not move; a rescheduler
		// without threshold, minimum gain, hold or a pod kept per site with
		// traffic (in dry run) would.
		setTraffic(t, e.store, map[string]float64{"a": 10, "c": 130})
		naive := rescheduler.DefaultConfig()
		naive.Interval, naive.PerReplicaRPS, naive.DryRun = reschedInterval, perReplicaRPS, true
		naive.Threshold, naive.MinGainMs, naive.HoldCycles, naive.MinPerTrafficSite, naive.MoveCooldown = 0, 0, 1, 0, 0
		nm, err := rescheduler.NewMetrics(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		nr, err := rescheduler.New(e.c, e.store, naive, nm, slog.New(slog.DiscardHandler), clock.RealClock{})
		if err != nil {
			t.Fatal(err)
		}
		nctx, ncancel := context.WithCancel(e.ctx)
		ndone := make(chan error, 1)
		go func() { ndone <- nr.Run(nctx) }()
		before := lead.evictions(t, "")
		rng := rand.New(rand.NewPCG(1, 2))
		base := map[[2]string]float64{{"a", "b"}: 10, {"b", "c"}: 10, {"a", "c"}: 20}
		deadline := time.Now().Add(20 * reschedInterval)
		for time.Now().Before(deadline) {
			for k, ms := range base {
				for _, dir := range [][2]string{k, {k[1], k[0]}} {
					err := e.store.ObserveRTT(topology.RTTSample{From: dir[0], To: dir[1], MeanMs: ms * (0.7 + 0.6*rng.Float64()), Sent: 1, Received: 1, At: time.Now()})
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		ncancel()
		if err := <-ndone; err != nil {
			t.Fatal(err)
		}
		if after := lead.evictions(t, ""); after != before {
			t.Errorf("%.0f evictions under measurement noise", after-before)
		}
		would := testutil.ToFloat64(nm.Evictions.WithLabelValues("traffic", "dry_run"))
		// A dry run evicts nothing, so the same intended move repeats every
		// cycle: this counts decisions to evict, not distinct pods.
		t.Logf("under noise: ning evicted nothing; without threshold and hold, in dry-run, it decided to evict %.0f times in %v", would, 20*reschedInterval)
		if would == 0 {
			t.Errorf("the noise never made another placement look better: the test does not exercise the threshold")
		}
		setTraffic(t, e.store, map[string]float64{"a": 10, "c": 100})
		for k, ms := range base {
			e.observe(t, k[0], k[1], ms)
		}
	})

	t.Run("delay constraint repaired", func(t *testing.T) {
		// The pod must run within 15 ms of site a: a or b. With the traffic
		// at c the scheduler picks b, the nearest allowed site.
		e.createDeployment(t, ns, "near-a", 1, map[string]string{"delay_a": "15"}, 0)
		e.waitPlacement(t, ns, "near-a", map[string]int{"b": 1}, 60*time.Second)
		// The prober now measures 30 ms between a and b.
		t0 := time.Now()
		e.observe(t, "a", "b", 30)
		e.waitPlacement(t, ns, "near-a", map[string]int{"a": 1}, 60*time.Second)
		t.Logf("delay constraint repaired in %.1f s", time.Since(t0).Seconds())
		if lead.evictions(t, "delay_violation") < 1 {
			t.Errorf("no delay_violation eviction counted")
		}
		e.observe(t, "a", "b", 10)
	})

	t.Run("node stops heartbeating", func(t *testing.T) {
		perSite, _, _, err := e.placement(e.ctx, ns, "web")
		if err != nil {
			t.Fatal(err)
		}
		victim := e.busiestNode(t, ns, "web")
		t.Logf("stopping node %s (web runs as %v)", victim, perSite)
		t0 := time.Now()
		e.sim.Stop(victim)
		err = wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
			ready, onNode, err := testcluster.ReadyAway(ctx, e.c, ns, "app=web", victim)
			return !onNode && ready == 4, err
		})
		if err != nil {
			t.Fatalf("web not running elsewhere after %s stopped: %v", victim, err)
		}
		t.Logf("recovered from the loss of %s in %.1f s (node down after %v; Kubernetes' default toleration is 300 s)",
			victim, time.Since(t0).Seconds(), rescheduler.DefaultConfig().NodeDownAfter)
		deleted := lead.evictions(t, "node_down")
		if err := e.sim.Resume(e.ctx, victim); err != nil {
			t.Fatal(err)
		}
		err = wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			n, err := e.c.CoreV1().Nodes().Get(ctx, victim, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, tn := range n.Spec.Taints {
				if tn.Key == rescheduler.TaintNodeDown {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			t.Fatalf("%s still tainted %s after it came back: %v", victim, rescheduler.TaintNodeDown, err)
		}
		time.Sleep(4 * reschedInterval)
		if again := lead.evictions(t, "node_down"); again != deleted {
			t.Errorf("%.0f more node_down deletions after the node came back", again-deleted)
		}
	})

	t.Run("only the leader acts", func(t *testing.T) {
		if n := standby.evictions(t, ""); n != 0 {
			t.Errorf("the standby replica evicted %.0f pods", n)
		}
		if lead.evictions(t, "") == 0 {
			t.Errorf("the leader evicted nothing in the whole test")
		}
		lead.cancel()
		<-lead.done
		err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
			return testutil.ToFloat64(standby.m.Leader) == 1, nil
		})
		if err != nil {
			t.Fatalf("the standby did not take over: %v", err)
		}
	})
}

// observe reports enough measurements of ms between two sites, both ways,
// for the store's moving average to settle there.
func (e *reschedEnv) observe(t *testing.T, a, b string, ms float64) {
	t.Helper()
	for range 30 {
		for _, dir := range [][2]string{{a, b}, {b, a}} {
			err := e.store.ObserveRTT(topology.RTTSample{From: dir[0], To: dir[1], MeanMs: ms, Sent: 1, Received: 1, At: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// busiestNode returns the node running most of the workload's pods.
func (e *reschedEnv) busiestNode(t *testing.T, ns, app string) string {
	t.Helper()
	list, err := e.c.CoreV1().Pods(ns).List(e.ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	best := ""
	for _, p := range list.Items {
		count[p.Spec.NodeName]++
		if best == "" || count[p.Spec.NodeName] > count[best] || (count[p.Spec.NodeName] == count[best] && p.Spec.NodeName < best) {
			best = p.Spec.NodeName
		}
	}
	return best
}
