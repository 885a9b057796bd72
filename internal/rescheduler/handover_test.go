package rescheduler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/testcluster"
)

// crash fails every request of a replica once set, as when its process
// dies: it neither renews its Lease nor releases it.
type crash struct {
	rt      http.RoundTripper
	crashed *atomic.Bool
}

func (c crash) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.crashed.Load() {
		return nil, errors.New("the replica has crashed")
	}
	return c.rt.RoundTrip(r)
}

// healReplica is one rescheduler process under leader election, its node
// checks driven by the test's clock.
type healReplica struct {
	name    string
	reg     *prometheus.Registry
	m       *Metrics
	crashed atomic.Bool
	rs      atomic.Pointer[Rescheduler] // this term's, while it leads
	stopped chan error
}

// TestNodeDownHandOver: a node goes down, and the leader is killed 5 s
// after (it has tainted that node and deleted its pods); a second node went
// down meanwhile. The standby takes over with none of the leader's memory,
// on a real apiserver with the real ReplicaSet controller: it keeps the
// first node's taint (it sees no renewal of its Lease), takes the second
// down on time (timed from its Lease's renew time, not from the hand-over),
// deletes each pod once (the first node's are already gone) and leaves the
// bare and StatefulSet pods, saying so; when the first node renews again,
// it takes its taint off. Node checks follow one fake clock, the cluster's
// (the Lease renewals, the taints' TimeAdded); leader election runs in real
// time.
func TestNodeDownHandOver(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cp := testcluster.Start(t)
	c := cp.Client
	clk := clocktesting.NewFakeClock(time.Now().Truncate(time.Second)) // Lease and taint times are whole seconds
	start := clk.Now()
	const leaseSeconds = 4
	cfg := DefaultConfig()
	cfg.NodeDownAfter, cfg.NodeCheckInterval = 4*time.Second, time.Second
	nodes := []string{"a-0", "a-1", "b-0", "b-1", "c-0", "c-1"}
	for _, name := range nodes {
		if _, err := testcluster.CreateReadyNode(ctx, c, testcluster.Node{Name: name, Site: name[:1]}); err != nil {
			t.Fatal(err)
		}
		now := metav1.NewMicroTime(clk.Now())
		if _, err := c.CoordinationV1().Leases(v1.NamespaceNodeLease).Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: v1.NamespaceNodeLease},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To(int32(leaseSeconds)), RenewTime: &now},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Every web pod the apiserver creates or deletes, from the start.
	var created, deleted atomic.Int32
	w, err := c.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	go func() {
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Added:
				created.Add(1)
			case watch.Deleted:
				deleted.Add(1)
			}
		}
	}()
	if err := testcluster.StartWorkloadControllers(ctx, c); err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			return cond(), nil
		}); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	listPods := func(selector string) []v1.Pod {
		t.Helper()
		pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			t.Fatal(err)
		}
		return pods.Items
	}

	// web: four ReplicaSet pods, two on a-0 and two on a-1 (bound here, as
	// the scheduler would).
	labels := map[string]string{"app": "web"}
	if _, err := c.AppsV1().ReplicaSets("default").Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(int32(4)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: v1.PodSpec{SchedulerName: cfg.SchedulerName, Containers: []v1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("web's four pods", func() bool { return len(listPods("app=web")) == 4 })
	for i, p := range listPods("app=web") {
		node := []string{"a-0", "a-1"}[i%2]
		if err := c.CoreV1().Pods("default").Bind(ctx, &v1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
			Target: v1.ObjectReference{Kind: "Node", Name: node}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		markRunning(ctx, t, c, p.Name)
	}
	// On a-0 too: a bare pod, and a pod of StatefulSet db (whose controller
	// does not run here).
	sts, err := c.AppsV1().StatefulSets("default").Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
				Spec: v1.PodSpec{Containers: []v1.Container{{Name: "db", Image: "registry.k8s.io/pause:3.10"}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*v1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "bare", Namespace: "default"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: "default", Labels: map[string]string{"app": "db"},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(sts, appsv1.SchemeGroupVersion.WithKind("StatefulSet"))}}},
	} {
		p.Spec = v1.PodSpec{SchedulerName: cfg.SchedulerName, NodeName: "a-0", Containers: []v1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}}
		if _, err := c.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		markRunning(ctx, t, c, p.Name)
	}

	// The replicas. terms counts the leader terms begun: each leaves two
	// tickers on clk (a fake ticker's Stop does not remove it).
	var terms atomic.Int32
	leader := LeaderConfig{Namespace: "kube-system", Name: "ning-rescheduler", LeaseDuration: 3 * time.Second,
		RenewDeadline: 2 * time.Second, RetryPeriod: 250 * time.Millisecond}
	startReplica := func(name string) *healReplica {
		r := &healReplica{name: name, reg: prometheus.NewRegistry(), stopped: make(chan error, 1)}
		if r.m, err = NewMetrics(r.reg); err != nil {
			t.Fatal(err)
		}
		rc := rest.CopyConfig(cp.Config)
		rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return crash{rt: rt, crashed: &r.crashed} }
		client, err := kubernetes.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		store := lineStore(t, clk, nil, nil)
		lc := leader
		lc.Identity = name
		go func() {
			r.stopped <- Lead(ctx, client, lc, discard(), func(ctx context.Context) {
				rs, err := New(client, store, cfg, r.m, discard(), clk)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				r.rs.Store(rs)
				defer r.rs.Store(nil)
				terms.Add(1)
				if err := rs.Run(ctx); err != nil && ctx.Err() == nil {
					t.Errorf("%s: %v", name, err)
				}
			})
		}()
		return r
	}
	leading := func(r *healReplica) bool { return testutil.ToFloat64(r.m.Leader) == 1 }
	checks := func(r *healReplica) uint64 {
		t.Helper()
		families, err := r.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range families {
			if mf.GetName() == "ning_rescheduler_node_check_duration_seconds" {
				return mf.GetMetric()[0].GetHistogram().GetSampleCount()
			}
		}
		return 0
	}

	// tick is one second of the cluster's time: the live nodes renew their
	// Leases (stamped with the second to come), the leader's cache sees it,
	// and the leader makes its node check for that second.
	silent := map[string]bool{}
	var mu sync.Mutex // guards silent
	tick := func(r *healReplica) {
		t.Helper()
		next := clk.Now().Add(time.Second)
		renewed := map[string]time.Time{}
		mu.Lock()
		for _, name := range nodes {
			if silent[name] {
				continue
			}
			l, err := c.CoordinationV1().Leases(v1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			l.Spec.RenewTime = ptr.To(metav1.NewMicroTime(next))
			if _, err := c.CoordinationV1().Leases(v1.NamespaceNodeLease).Update(ctx, l, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			renewed[name] = next
		}
		mu.Unlock()
		waitFor(r.name+"'s Lease cache", func() bool {
			rs := r.rs.Load()
			if rs == nil {
				return false
			}
			for name, at := range renewed {
				l, err := rs.leases.Leases(v1.NamespaceNodeLease).Get(name)
				if err != nil || l.Spec.RenewTime == nil || !l.Spec.RenewTime.Time.Equal(at) {
					return false
				}
			}
			return true
		})
		waitFor(r.name+"'s loops", func() bool { return clk.Waiters() == 2*int(terms.Load()) })
		before := checks(r)
		clk.Step(time.Second)
		waitFor(r.name+"'s node check", func() bool { return checks(r) > before })
	}
	at := func() int { return int(clk.Now().Sub(start) / time.Second) }
	taint := func(name string) *v1.Taint {
		t.Helper()
		n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tn := range n.Spec.Taints {
			if tn.Key == TaintNodeDown {
				return &tn
			}
		}
		return nil
	}
	deletions := func(r *healReplica) float64 {
		return testutil.ToFloat64(r.m.Evictions.WithLabelValues("node_down", string(resultDeleted)))
	}
	onNode := func(node string) int {
		n := 0
		for _, p := range listPods("app=web") {
			if p.Spec.NodeName == node {
				n++
			}
		}
		return n
	}

	a := startReplica("a")
	waitFor("a to lead", func() bool { return leading(a) })
	b := startReplica("b")
	// a-0 renews last at 2 s, a-1 at 5 s.
	for at() < 7 {
		switch at() {
		case 2:
			mu.Lock()
			silent["a-0"] = true
			mu.Unlock()
		case 5:
			mu.Lock()
			silent["a-1"] = true
			mu.Unlock()
		}
		tick(a)
		if got, want := taint("a-0") != nil, at() >= 6; got != want {
			t.Fatalf("at %d s, a-0 tainted %t, want %t (silent since 2 s, down after %v)", at(), got, want, cfg.NodeDownAfter)
		}
	}
	if n := onNode("a-0"); n != 0 || deletions(a) != 2 {
		t.Fatalf("after a-0 went down: %d web pods still on it, the leader deleted %v; want 0 and 2", n, deletions(a))
	}

	// 5 s after a-0 went down, the leader dies.
	a.crashed.Store(true)
	waitFor("a to stop acting", func() bool { return !leading(a) })
	waitFor("b to lead", func() bool { return leading(b) })
	for at() < 12 {
		tick(b)
		if taint("a-0") == nil {
			t.Fatalf("at %d s, %s's first checks took the taint off a-0, which is still silent", at(), b.name)
		}
		if got, want := taint("a-1") != nil, at() >= 9; got != want {
			t.Fatalf("at %d s, a-1 tainted %t, want %t (silent since 5 s, down after %v)", at(), got, want, cfg.NodeDownAfter)
		}
	}
	if tn := taint("a-1"); !tn.TimeAdded.Time.Equal(start.Add(9 * time.Second)) {
		t.Errorf("a-1 tainted at %v, want at 9 s", tn.TimeAdded.Sub(start))
	}
	if n := onNode("a-1"); n != 0 {
		t.Errorf("%d web pods still on a-1", n)
	}
	// Each pod of a down node deleted once, and replaced once.
	waitFor("web's replacements", func() bool { return created.Load() == 8 && deleted.Load() == 4 })
	if da, db := deletions(a), deletions(b); da != 2 || db != 2 {
		t.Errorf("deletions: %v by a, %v by b; want 2 each", da, db)
	}
	t.Logf("web pods deleted from down nodes: %v by the first leader, %v by its successor; %d deleted and %d created in all (4 at the start)",
		deletions(a), deletions(b), deleted.Load(), created.Load())
	// The pods ning leaves on a-0 are still there, with a Warning naming why.
	for _, name := range []string{"bare", "db-0"} {
		if _, err := c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		waitFor("the NingNotRescued Event on "+name, func() bool {
			evs, err := c.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
				"involvedObject.name": name, "reason": ReasonNotRescued}.String()})
			return err == nil && len(evs.Items) > 0
		})
	}
	for _, r := range []*healReplica{a, b} {
		for reason, want := range map[string]float64{"bare_pod": 1, "statefulset": 1} {
			if got := testutil.ToFloat64(r.m.NotRescued.WithLabelValues(reason)); got != want {
				t.Errorf("%s: ning_rescheduler_pods_not_rescued_total{reason=%q} = %v, want %v", r.name, reason, got, want)
			}
		}
	}

	// a-0 is back: b sees its Lease renewed and takes the taint off.
	mu.Lock()
	delete(silent, "a-0")
	mu.Unlock()
	tick(b)
	if taint("a-0") != nil {
		t.Errorf("a-0 renews again, but still carries %s", TaintNodeDown)
	}
	if taint("a-1") == nil {
		t.Errorf("a-1 is still silent, but lost %s", TaintNodeDown)
	}
	if n := created.Load(); n != 8 {
		t.Errorf("%d web pods created in all, want 8", n)
	}
	cancel()
	for _, r := range []*healReplica{a, b} {
		if err := <-r.stopped; err != nil {
			t.Errorf("%s: Lead: %v", r.name, err)
		}
	}
}

// markRunning sets a bound pod Running and Ready, as its kubelet would.
func markRunning(ctx context.Context, t *testing.T, c kubernetes.Interface, name string) {
	t.Helper()
	p, err := c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = v1.PodRunning
	p.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}}
	if _, err := c.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(fmt.Errorf("pod %s: %w", name, err))
	}
}
