package rescheduler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
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
	"github.com/ning-edge/ning/internal/topology"
)

// crash fails every request of a replica once crashed, as when its process
// dies: it neither renews its Lease nor releases it. With after set, the
// replica crashes right after the first request for which after is true
// has been answered.
type crash struct {
	rt      http.RoundTripper
	crashed *atomic.Bool
	after   func(*http.Request) bool
}

func (c crash) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.crashed.Load() {
		return nil, errors.New("the replica has crashed")
	}
	resp, err := c.rt.RoundTrip(r)
	if err == nil && c.after != nil && c.after(r) {
		c.crashed.Store(true)
	}
	return resp, err
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

// healEnv is a real apiserver with the real ReplicaSet controller, nodes
// whose Leases the test renews (each with the cluster's fake clock), and
// rescheduler replicas whose node checks follow that clock; leader
// election runs in real time.
type healEnv struct {
	t      *testing.T
	ctx    context.Context
	cp     *testcluster.ControlPlane
	c      kubernetes.Interface
	clk    *clocktesting.FakeClock
	start  time.Time
	cfg    Config
	nodes  []string
	silent map[string]bool // nodes that do not renew their Lease
	// heard are the sites the data plane hears, a probe from b each second
	// of the clock, in store, which every replica reads.
	heard map[string]bool
	store *topology.Store
	// created and deleted count the web pods the apiserver created and
	// deleted, from the start.
	created, deleted atomic.Int32
	// terms counts the leader terms begun: each leaves two tickers on clk
	// (a fake ticker's Stop does not remove it).
	terms atomic.Int32
}

// newHealEnv starts the cluster: nodes a-0 .. c-1, their Leases renewed
// now, lasting 4 s; NodeDownAfter is 4 s, and the nodes are checked every
// second of the fake clock.
func newHealEnv(ctx context.Context, t *testing.T) *healEnv {
	cp := testcluster.Start(t)
	e := &healEnv{t: t, ctx: ctx, cp: cp, c: cp.Client, clk: clocktesting.NewFakeClock(time.Now().Truncate(time.Second)), // Lease and taint times are whole seconds
		cfg: DefaultConfig(), nodes: []string{"a-0", "a-1", "b-0", "b-1", "c-0", "c-1"}, silent: map[string]bool{}, heard: map[string]bool{}}
	e.store = lineStore(t, e.clk, nil, nil)
	e.start = e.clk.Now()
	e.cfg.NodeDownAfter, e.cfg.NodeCheckInterval = 4*time.Second, time.Second
	for _, name := range e.nodes {
		if _, err := testcluster.CreateReadyNode(ctx, e.c, testcluster.Node{Name: name, Site: name[:1]}); err != nil {
			t.Fatal(err)
		}
		now := metav1.NewMicroTime(e.clk.Now())
		if _, err := e.c.CoordinationV1().Leases(v1.NamespaceNodeLease).Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: v1.NamespaceNodeLease},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To(int32(4)), RenewTime: &now},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := e.c.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	go func() {
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Added:
				e.created.Add(1)
			case watch.Deleted:
				e.deleted.Add(1)
			}
		}
	}()
	if err := testcluster.StartWorkloadControllers(ctx, e.c); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *healEnv) waitFor(what string, cond func() bool) {
	e.t.Helper()
	if err := wait.PollUntilContextTimeout(e.ctx, 20*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return cond(), nil
	}); err != nil {
		e.t.Fatalf("waiting for %s: %v", what, err)
	}
}

func (e *healEnv) pods(selector string) []v1.Pod {
	e.t.Helper()
	pods, err := e.c.CoreV1().Pods("default").List(e.ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		e.t.Fatal(err)
	}
	return pods.Items
}

// web creates ReplicaSet web with one pod on each of nodes (bound here, as
// the scheduler would), Running and Ready.
func (e *healEnv) web(nodes ...string) {
	e.t.Helper()
	labels := map[string]string{"app": "web"}
	if _, err := e.c.AppsV1().ReplicaSets("default").Create(e.ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(int32(len(nodes))), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: v1.PodSpec{SchedulerName: e.cfg.SchedulerName, Containers: []v1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}}}},
	}, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.waitFor("web's pods", func() bool { return len(e.pods("app=web")) == len(nodes) })
	for i, p := range e.pods("app=web") {
		if err := e.c.CoreV1().Pods("default").Bind(e.ctx, &v1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
			Target: v1.ObjectReference{Kind: "Node", Name: nodes[i]}}, metav1.CreateOptions{}); err != nil {
			e.t.Fatal(err)
		}
		markRunning(e.ctx, e.t, e.c, p.Name)
	}
}

// replica starts a rescheduler replica under leader election; after, if
// set, is the request after which it crashes (see crash).
func (e *healEnv) replica(name string, after func(*http.Request) bool) *healReplica {
	t := e.t
	r := &healReplica{name: name, reg: prometheus.NewRegistry(), stopped: make(chan error, 1)}
	var err error
	if r.m, err = NewMetrics(r.reg); err != nil {
		t.Fatal(err)
	}
	rc := rest.CopyConfig(e.cp.Config)
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return crash{rt: rt, crashed: &r.crashed, after: after} }
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	store := e.store
	lc := LeaderConfig{Namespace: "kube-system", Name: "ning-rescheduler", Identity: name, LeaseDuration: 3 * time.Second,
		RenewDeadline: 2 * time.Second, RetryPeriod: 250 * time.Millisecond}
	go func() {
		r.stopped <- Lead(e.ctx, client, lc, discard(), func(ctx context.Context) {
			rs, err := New(client, store, e.cfg, r.m, discard(), e.clk)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			r.rs.Store(rs)
			defer r.rs.Store(nil)
			e.terms.Add(1)
			if err := rs.Run(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}()
	return r
}

func (r *healReplica) leading() bool { return testutil.ToFloat64(r.m.Leader) == 1 }

// checks is how many node checks r has finished.
func (r *healReplica) checks(t *testing.T) uint64 {
	t.Helper()
	return samples(t, r.reg, "ning_rescheduler_node_check_duration_seconds")
}

// deletions is how many pods r deleted from down nodes.
func (r *healReplica) deletions() float64 {
	return testutil.ToFloat64(r.m.Evictions.WithLabelValues("node_down", string(resultDeleted)))
}

// tick is one second of the cluster's time: the live nodes renew their
// Leases (stamped with the second to come), the leader r's cache sees it,
// and r makes its node check for that second.
func (e *healEnv) tick(r *healReplica) {
	e.t.Helper()
	next := e.clk.Now().Add(time.Second)
	renewed := map[string]time.Time{}
	for _, name := range e.nodes {
		if e.silent[name] {
			continue
		}
		l, err := e.c.CoordinationV1().Leases(v1.NamespaceNodeLease).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
		l.Spec.RenewTime = ptr.To(metav1.NewMicroTime(next))
		if _, err := e.c.CoordinationV1().Leases(v1.NamespaceNodeLease).Update(e.ctx, l, metav1.UpdateOptions{}); err != nil {
			e.t.Fatal(err)
		}
		renewed[name] = next
	}
	for site, on := range e.heard {
		if on {
			if err := e.store.ObserveRTT(topology.RTTSample{From: "b", To: site, MeanMs: 20, Sent: 1, Received: 1, At: e.clk.Now()}); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	e.waitFor(r.name+"'s Lease cache", func() bool {
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
	e.waitFor(r.name+"'s loops", func() bool { return e.clk.Waiters() == 2*int(e.terms.Load()) })
	before := r.checks(e.t)
	e.clk.Step(time.Second)
	e.waitFor(r.name+"'s node check", func() bool { return r.checks(e.t) > before })
}

// at is the fake clock's time in whole seconds from the start.
func (e *healEnv) at() int { return int(e.clk.Now().Sub(e.start) / time.Second) }

// taint is the node's TaintNodeDown, nil without one.
func (e *healEnv) taint(name string) *v1.Taint {
	e.t.Helper()
	n, err := e.c.CoreV1().Nodes().Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, tn := range n.Spec.Taints {
		if tn.Key == TaintNodeDown {
			return &tn
		}
	}
	return nil
}

// onNode counts the web pods bound to node.
func (e *healEnv) onNode(node string) int {
	n := 0
	for _, p := range e.pods("app=web") {
		if p.Spec.NodeName == node {
			n++
		}
	}
	return n
}

func (e *healEnv) stop(cancel context.CancelFunc, rs ...*healReplica) {
	cancel()
	for _, r := range rs {
		if err := <-r.stopped; err != nil {
			e.t.Errorf("%s: Lead: %v", r.name, err)
		}
	}
}

// TestNodeDownHandOver: a node goes down, and the leader is killed 5 s
// after (it has tainted that node and deleted its pods); a second node went
// down meanwhile. The standby takes over with none of the leader's memory:
// it keeps the first node's taint (it sees no renewal of its Lease), takes
// the second down on time (timed from its Lease's renew time, not from the
// hand-over), deletes each pod once (the first node's are already gone) and
// leaves the bare and StatefulSet pods, saying so; when the first node
// renews again, it takes its taint off.
func TestNodeDownHandOver(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newHealEnv(ctx, t)
	c := e.c
	e.web("a-0", "a-1", "a-0", "a-1")
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
		p.Spec = v1.PodSpec{SchedulerName: e.cfg.SchedulerName, NodeName: "a-0", Containers: []v1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}}
		if _, err := c.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		markRunning(ctx, t, c, p.Name)
	}

	a := e.replica("a", nil)
	e.waitFor("a to lead", a.leading)
	b := e.replica("b", nil)
	// a-0 renews last at 2 s, a-1 at 5 s.
	for e.at() < 7 {
		switch e.at() {
		case 2:
			e.silent["a-0"] = true
		case 5:
			e.silent["a-1"] = true
		}
		e.tick(a)
		if got, want := e.taint("a-0") != nil, e.at() >= 6; got != want {
			t.Fatalf("at %d s, a-0 tainted %t, want %t (silent since 2 s, down after %v)", e.at(), got, want, e.cfg.NodeDownAfter)
		}
	}
	if n := e.onNode("a-0"); n != 0 || a.deletions() != 2 {
		t.Fatalf("after a-0 went down: %d web pods still on it, the leader deleted %v; want 0 and 2", n, a.deletions())
	}

	// 5 s after a-0 went down, the leader dies.
	a.crashed.Store(true)
	e.waitFor("a to stop acting", func() bool { return !a.leading() })
	e.waitFor("b to lead", b.leading)
	for e.at() < 12 {
		e.tick(b)
		if e.taint("a-0") == nil {
			t.Fatalf("at %d s, %s's first checks took the taint off a-0, which is still silent", e.at(), b.name)
		}
		if got, want := e.taint("a-1") != nil, e.at() >= 9; got != want {
			t.Fatalf("at %d s, a-1 tainted %t, want %t (silent since 5 s, down after %v)", e.at(), got, want, e.cfg.NodeDownAfter)
		}
	}
	if tn := e.taint("a-1"); !tn.TimeAdded.Time.Equal(e.start.Add(9 * time.Second)) {
		t.Errorf("a-1 tainted at %v, want at 9 s", tn.TimeAdded.Sub(e.start))
	}
	if n := e.onNode("a-1"); n != 0 {
		t.Errorf("%d web pods still on a-1", n)
	}
	// Each pod of a down node deleted once, and replaced once.
	e.waitFor("web's replacements", func() bool { return e.created.Load() == 8 && e.deleted.Load() == 4 })
	if da, db := a.deletions(), b.deletions(); da != 2 || db != 2 {
		t.Errorf("deletions: %v by a, %v by b; want 2 each", da, db)
	}
	t.Logf("web pods deleted from down nodes: %v by the first leader, %v by its successor; %d deleted and %d created in all (4 at the start)",
		a.deletions(), b.deletions(), e.deleted.Load(), e.created.Load())
	// The pods ning leaves on a-0 are still there, with a Warning saying why.
	for _, name := range []string{"bare", "db-0"} {
		if _, err := c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		e.waitFor("the NingNotRescued Event on "+name, func() bool {
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
	delete(e.silent, "a-0")
	e.tick(b)
	if e.taint("a-0") != nil {
		t.Errorf("a-0 renews again, but still carries %s", TaintNodeDown)
	}
	if e.taint("a-1") == nil {
		t.Errorf("a-1 is still silent, but lost %s", TaintNodeDown)
	}
	if n := e.created.Load(); n != 8 {
		t.Errorf("%d web pods created in all, want 8", n)
	}
	e.stop(cancel, a, b)
}

// TestNodeDownCrashAfterTaint: the leader crashes between tainting a down
// node and deleting its pods. The next leader keeps the taint, deletes the
// pods once it has seen the node silent itself, and nothing is deleted or
// replaced twice.
func TestNodeDownCrashAfterTaint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newHealEnv(ctx, t)
	e.web("a-0", "a-0", "b-0")
	// a crashes once its taint patch on a node is answered.
	a := e.replica("a", func(r *http.Request) bool {
		return r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/api/v1/nodes/")
	})
	e.waitFor("a to lead", a.leading)
	b := e.replica("b", nil)
	for e.at() < 6 {
		if e.at() == 2 {
			e.silent["a-0"] = true
		}
		e.tick(a)
	}
	tn := e.taint("a-0")
	if tn == nil || !a.crashed.Load() {
		t.Fatalf("at 6 s a-0 is tainted: %v, a crashed: %t; want both", tn, a.crashed.Load())
	}
	if n := e.onNode("a-0"); n != 2 || a.deletions() != 0 {
		t.Fatalf("a crashed before deleting, yet %d web pods are on a-0 (want 2) and it deleted %v", n, a.deletions())
	}
	e.waitFor("a to stop acting", func() bool { return !a.leading() })
	e.waitFor("b to lead", b.leading)
	for e.at() < 12 {
		e.tick(b)
		if e.taint("a-0") == nil {
			t.Fatalf("at %d s, %s took the taint off a-0, which is still silent", e.at(), b.name)
		}
	}
	if got := e.taint("a-0"); !got.TimeAdded.Equal(tn.TimeAdded) {
		t.Errorf("a-0's taint added at %v, then at %v: tainted again", tn.TimeAdded.Sub(e.start), got.TimeAdded.Sub(e.start))
	}
	e.waitFor("web's replacements", func() bool { return e.created.Load() == 5 && e.deleted.Load() == 2 })
	if n := e.onNode("a-0"); n != 0 || b.deletions() != 2 {
		t.Errorf("%d web pods still on a-0, %v deleted by b; want 0 and 2", n, b.deletions())
	}
	e.tick(b)
	if c, d := e.created.Load(), e.deleted.Load(); c != 5 || d != 2 {
		t.Errorf("web pods created %d, deleted %d in all; want 5 (3 at the start) and 2", c, d)
	}
	t.Logf("web pods deleted from a-0: %v by the crashed leader, %v by its successor", a.deletions(), b.deletions())
	e.stop(cancel, a, b)
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

// TestPartitionCrashAfterSurge: node a-0 is cut off (site a's Leases silent,
// the site heard by the data plane), and the leader crashes right after it
// has added the replicas for a-0's two pods to their Deployment. The next
// leader keeps the taint and the pods, adds no replicas again (the
// Deployment's annotation says they are there), and once the data plane
// loses site a too, deletes the two pods once and takes the replicas back.
func TestPartitionCrashAfterSurge(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newHealEnv(ctx, t)
	e.cfg.DataPlaneWindow = 3 * time.Second
	labels := map[string]string{"app": "web"}
	if _, err := e.c.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(3)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: v1.PodSpec{SchedulerName: e.cfg.SchedulerName, Containers: []v1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("web's pods", func() bool { return len(e.pods("app=web")) == 3 })
	for i, p := range e.pods("app=web") {
		node := []string{"a-0", "a-0", "b-0"}[i]
		if err := e.c.CoreV1().Pods("default").Bind(ctx, &v1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
			Target: v1.ObjectReference{Kind: "Node", Name: node}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		markRunning(ctx, t, e.c, p.Name)
	}
	replicas := func() (int32, string) {
		d, err := e.c.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *d.Spec.Replicas, d.Annotations[AnnotationSurge]
	}
	most := int32(0)
	watchReplicas := func() {
		if n, _ := replicas(); n > most {
			most = n
		}
	}
	e.heard["a"] = true
	// a crashes once its patch of a Deployment is answered.
	a := e.replica("a", func(r *http.Request) bool {
		return r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/apis/apps/v1/namespaces/default/deployments/")
	})
	e.waitFor("a to lead", a.leading)
	b := e.replica("b", nil)
	for !a.crashed.Load() && e.at() < 10 {
		if e.at() == 2 {
			// The whole site falls silent (a partition cuts a site off):
			// while a-1 renewed, a-0 would be dead, not cut off.
			e.silent["a-0"], e.silent["a-1"] = true, true
		}
		e.tick(a)
		watchReplicas()
	}
	if n, ann := replicas(); !a.crashed.Load() || n != 5 || ann != `{"a-0":2}` || e.taint("a-0") == nil {
		t.Fatalf("at %d s: a crashed %t, web has %d replicas (%s %q), a-0 tainted %t; want a crashed after adding 2 for a-0",
			e.at(), a.crashed.Load(), n, AnnotationSurge, ann, e.taint("a-0") != nil)
	}
	e.waitFor("a to stop acting", func() bool { return !a.leading() })
	e.waitFor("b to lead", b.leading)
	// b: a-0 silent and its site heard; then the data plane loses a.
	for start := e.at(); e.at() < start+8; {
		e.tick(b)
		watchReplicas()
		if n := e.onNode("a-0"); n != 2 {
			t.Fatalf("at %d s, %d web pods on a-0 while it is cut off; want its 2 kept", e.at(), n)
		}
	}
	e.heard["a"] = false
	for start := e.at(); e.at() < start+8; {
		e.tick(b)
		watchReplicas()
	}
	e.waitFor("a-0's pods deleted and the replicas taken back", func() bool {
		n, ann := replicas()
		return e.onNode("a-0") == 0 && n == 3 && ann == ""
	})
	added := testutil.ToFloat64(b.m.PartitionSurge.WithLabelValues("added"))
	released := testutil.ToFloat64(b.m.PartitionSurge.WithLabelValues("released"))
	if most != 5 || added != 0 || released != 2 || b.deletions() != 2 || a.deletions() != 0 {
		t.Errorf("web at most %d replicas (want 5); b added %v, took back %v replicas (want 0, 2); deleted a-0's pods: a %v, b %v (want 0, 2)",
			most, added, released, a.deletions(), b.deletions())
	}
	t.Logf("replicas added for a-0: 2 by the crashed leader, %v by its successor, which took back %v and deleted %v pods", added, released, b.deletions())
	e.stop(cancel, a, b)
}
