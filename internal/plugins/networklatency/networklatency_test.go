package networklatency

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/queuesort"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"
	clocktesting "k8s.io/utils/clock/testing"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/schedmetrics"
	"github.com/ning-edge/ning/internal/testcluster"
	"github.com/ning-edge/ning/internal/topology"
)

// activated records the pods PostFilter sends back to the queue.
type activated struct{ pods []string }

func (a *activated) Activate(_ klog.Logger, pods map[string]*v1.Pod) {
	for k := range pods {
		a.pods = append(a.pods, k)
	}
}

// env is the plugin over a real apiserver holding sites a, b, c, d (one node
// each; a-b 10 ms, a-c 40 ms, d's RTTs unknown), the pod db bound to b-0 and
// the pod pending unbound.
type env struct {
	nodes     []*v1.Node
	fw        framework.Framework
	f         informers.SharedInformerFactory
	store     *topology.Store
	recorder  *events.FakeRecorder
	activated *activated
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cp := testcluster.Start(t)
	e := &env{f: informers.NewSharedInformerFactory(cp.Client, 0), recorder: events.NewFakeRecorder(10), activated: &activated{}}
	for _, name := range []string{"a-0", "b-0", "c-0", "d-0"} {
		n, err := testcluster.CreateReadyNode(ctx, cp.Client, testcluster.Node{Name: name, Site: name[:1]})
		if err != nil {
			t.Fatal(err)
		}
		e.nodes = append(e.nodes, n)
	}
	for _, p := range []*v1.Pod{st.MakePod().Namespace("default").Name("db").Node("b-0").Container("registry.k8s.io/pause:3.10").Obj(),
		st.MakePod().Namespace("default").Name("pending").Container("registry.k8s.io/pause:3.10").Obj()} {
		if _, err := cp.Client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.store = topology.NewStore(topology.Config{}, clocktesting.NewFakeClock(time.Now()))
	for k, v := range map[[2]string]float64{{"a", "b"}: 10, {"a", "c"}: 40} {
		if err := e.store.SetStaticRTT(k[0], k[1], v); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := tf.NewFramework(ctx, []tf.RegisterPluginFunc{
		tf.RegisterQueueSortPlugin(queuesort.Name, queuesort.New),
		tf.RegisterBindPlugin(defaultbinder.Name, defaultbinder.New),
	}, "ning-scheduler", frameworkruntime.WithInformerFactory(e.f), frameworkruntime.WithClientSet(cp.Client),
		frameworkruntime.WithEventRecorder(e.recorder), frameworkruntime.WithPodActivator(e.activated))
	if err != nil {
		t.Fatal(err)
	}
	e.fw = fw
	return e
}

// plugin builds the plugin with args and waits until its caches hold every
// node and the db pod.
func (e *env) plugin(t *testing.T, args configv1alpha1.NetworkLatencyArgs) *Plugin {
	t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := Factory(e.store, schedmetrics.Register())(context.Background(), &runtime.Unknown{Raw: raw}, e.fw)
	if err != nil {
		t.Fatal(err)
	}
	p := pl.(*Plugin)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e.f.Start(ctx.Done())
	e.f.WaitForCacheSync(ctx.Done())
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		_, err := policy.ResolveFrom(mustParse(t, "delay_db", "1")[0], "default", p.locate)
		return err == nil && len(p.index.Sites()) == len(e.nodes), nil
	}); err != nil {
		t.Fatalf("caches never caught up: %v", err)
	}
	return p
}

// verdicts is PreFilter's status and, when it succeeds, Filter's per node.
type verdicts struct {
	PreFilter fwk.Code
	Reasons   []string
	Nodes     map[string]string // node -> "" (passes) or "Unresolvable: reason"
}

func (e *env) judge(p *Plugin, pod *v1.Pod) (verdicts, fwk.CycleState) {
	state := framework.NewCycleState()
	_, s := p.PreFilter(context.Background(), state, pod, nil)
	v := verdicts{PreFilter: s.Code()}
	if !s.IsSuccess() {
		v.Reasons = s.Reasons()
		return v, state
	}
	v.Nodes = map[string]string{}
	for _, n := range e.nodes {
		ni := framework.NewNodeInfo()
		ni.SetNode(n)
		if fs := p.Filter(context.Background(), state, pod, ni); !fs.IsSuccess() {
			v.Nodes[n.Name] = fs.Code().String() + ": " + fs.Message()
		} else {
			v.Nodes[n.Name] = ""
		}
	}
	return v, state
}

func mustParse(t *testing.T, k, v string) []placement.Constraint {
	t.Helper()
	cs, err := placement.ParseConstraints(map[string]string{k: v})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestNetworkLatencyFilter(t *testing.T) {
	e := newEnv(t)
	closed := e.plugin(t, configv1alpha1.NetworkLatencyArgs{})
	open := e.plugin(t, configv1alpha1.NetworkLatencyArgs{UnknownRTT: configv1alpha1.FailOpen})
	const unres = "UnschedulableAndUnresolvable: "
	tests := []struct {
		name   string
		open   bool
		labels map[string]string
		want   verdicts
	}{
		{name: "no delay label: skipped", want: verdicts{PreFilter: fwk.Skip}},
		{name: "malformed label: unresolvable", labels: map[string]string{"delay_a": "soon"},
			want: verdicts{PreFilter: fwk.UnschedulableAndUnresolvable, Reasons: []string{`label delay_a="soon" is not a delay in milliseconds (want e.g. "25" or "25ms")`}}},
		{name: "a <from> that names nothing: resolvable", labels: map[string]string{"delay_ghost": "10"},
			want: verdicts{PreFilter: fwk.Unschedulable, Reasons: []string{"delay_ghost 10ms: no node, site or pod named ghost"}}},
		{name: "a <from> pod not on a node yet: resolvable", labels: map[string]string{"delay_pending": "10"},
			want: verdicts{PreFilter: fwk.Unschedulable, Reasons: []string{"delay_pending 10ms: pod default/pending is not on a node yet"}}},
		{name: "within 35 ms of site a, unknown RTTs fail closed", labels: map[string]string{"delay_a": "35"},
			want: verdicts{PreFilter: fwk.Success, Nodes: map[string]string{"a-0": "", "b-0": "",
				"c-0": unres + "delay_a 35ms: c is 40.0ms from a", "d-0": unres + "delay_a 35ms: no RTT measurement between a and d"}}},
		{name: "within 35 ms of site a, unknown RTTs fail open", open: true, labels: map[string]string{"delay_a": "35"},
			want: verdicts{PreFilter: fwk.Success, Nodes: map[string]string{"a-0": "", "b-0": "",
				"c-0": unres + "delay_a 35ms: c is 40.0ms from a", "d-0": ""}}},
		{name: "within 5 ms of node a-0", labels: map[string]string{"delay_a-0": "5"},
			want: verdicts{PreFilter: fwk.Success, Nodes: map[string]string{"a-0": "",
				"b-0": unres + "delay_a-0 5ms: b is 10.0ms from a-0 (site a)", "c-0": unres + "delay_a-0 5ms: c is 40.0ms from a-0 (site a)",
				"d-0": unres + "delay_a-0 5ms: no RTT measurement between a and d"}}},
		{name: "within 20 ms of the pod db (on b-0)", labels: map[string]string{"delay_db": "20"},
			want: verdicts{PreFilter: fwk.Success, Nodes: map[string]string{"a-0": "", "b-0": "",
				"c-0": unres + "delay_db 20ms: no RTT measurement between b and c", "d-0": unres + "delay_db 20ms: no RTT measurement between b and d"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := closed
			if tt.open {
				p = open
			}
			pod := st.MakePod().Namespace("default").Name("web").UID("web").Labels(tt.labels).Obj()
			got, _ := e.judge(p, pod)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestNetworkLatencyFailsOpen: when no node fits and the constraints
// rejected sites only for unknown RTTs, PostFilter latches the pod open for
// policy.FailOpenFor, records an Event and activates the pod; a measured
// breach does not.
func TestNetworkLatencyFailsOpen(t *testing.T) {
	e := newEnv(t)
	p := e.plugin(t, configv1alpha1.NetworkLatencyArgs{})
	clk := clocktesting.NewFakeClock(time.Now())
	p.clock = clk
	pod := st.MakePod().Namespace("default").Name("web").UID("web").Labels(map[string]string{"delay_d": "10"}).Obj()
	v, state := e.judge(p, pod)
	if v.Nodes["a-0"] == "" {
		t.Fatalf("a-0 passes before failing open: %+v", v)
	}
	_, s := p.PostFilter(context.Background(), state, pod, nil)
	if diff := cmp.Diff("delay constraints will fail open for sites without RTT data", s.Message()); diff != "" {
		t.Fatalf("PostFilter (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"default/web"}, e.activated.pods); diff != "" {
		t.Errorf("activated (-want +got):\n%s", diff)
	}
	select {
	case ev := <-e.recorder.Events:
		want := "Warning NingDelayFailOpen No node fits and the RTT to sites [a b c] is unknown: delay constraints fail open for those sites for 10m0s"
		if ev != want {
			t.Errorf("event %q, want %q", ev, want)
		}
	default:
		t.Error("no Event recorded")
	}
	if v, _ := e.judge(p, pod); v.Nodes["a-0"] != "" || v.Nodes["b-0"] != "" {
		t.Errorf("after failing open, a-0 and b-0 must pass: %+v", v)
	}
	// Latched: a second PostFilter does nothing more.
	if _, s := p.PostFilter(context.Background(), state, pod, nil); s.Message() != "" || len(e.activated.pods) != 1 {
		t.Errorf("second PostFilter: %q, activated %v", s.Message(), e.activated.pods)
	}
	clk.Step(policy.FailOpenFor + time.Second)
	if v, _ := e.judge(p, pod); v.Nodes["a-0"] == "" {
		t.Errorf("after %s the constraints must fail closed again: %+v", policy.FailOpenFor, v)
	}
	// A measured breach anywhere: no failing open.
	breach := st.MakePod().Namespace("default").Name("api").UID("api").Labels(map[string]string{"delay_a": "35"}).Obj()
	_, state = e.judge(p, breach)
	if _, s := p.PostFilter(context.Background(), state, breach, nil); s.Message() != "" {
		t.Errorf("PostFilter with a measured breach: %q", s.Message())
	}
}
