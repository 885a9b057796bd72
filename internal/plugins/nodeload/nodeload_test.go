package nodeload

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/schedmetrics"
	"github.com/ning-edge/ning/internal/topology"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// loads is a real topology store holding each node's load as reported now.
func loads(t *testing.T, load map[string]topology.Load) *topology.Store {
	t.Helper()
	s := topology.NewStore(topology.Config{}, clocktesting.NewFakeClock(now))
	for node, l := range load {
		l.Updated = now
		if err := s.ObserveLoad(node, l); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// handle gives the plugin informers, as the scheduler's framework does.
type handle struct {
	framework.Handle
	informers informers.SharedInformerFactory
}

func (h handle) SharedInformerFactory() informers.SharedInformerFactory { return h.informers }

// newPlugin builds the plugin as the scheduler does, with informers on a
// fake clientset holding pods (on the nodes their Spec.NodeName names), and
// waits until its index has seen them.
func newPlugin(tb testing.TB, store Loads, args string, pods ...*v1.Pod) *Plugin {
	tb.Helper()
	var obj runtime.Object
	if args != "" {
		obj = &runtime.Unknown{Raw: []byte(args)}
	}
	objs := make([]runtime.Object, len(pods))
	for i, p := range pods {
		objs[i] = p
	}
	f := informers.NewSharedInformerFactory(fake.NewClientset(objs...), 0)
	pl, err := Factory(store, schedmetrics.Register())(context.Background(), obj, handle{informers: f})
	if err != nil {
		tb.Fatal(err)
	}
	p := pl.(*Plugin)
	stop := make(chan struct{})
	tb.Cleanup(func() { close(stop); f.Shutdown() })
	f.Start(stop)
	if p.index != nil && !cache.WaitForCacheSync(stop, p.index.HasSynced) {
		tb.Fatal("the index did not sync")
	}
	return p
}

func nodeInfo(name string, pods ...*v1.Pod) fwk.NodeInfo {
	ni := framework.NewNodeInfo(pods...)
	ni.SetNode(st.MakeNode().Name(name).Obj())
	return ni
}

// replica is pod name of the ReplicaSet owner (UID "uid-"+owner).
func replica(owner, name string) *st.PodWrapper {
	p := st.MakePod().Namespace("default").Name(name).UID("uid-" + name)
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: owner,
		UID: types.UID("uid-" + owner), Controller: ptr.To(true)}}
	return p
}

// pods returns n pods of owner on a node; terminating ones if asked.
func pods(owner string, n int, terminating bool) []*v1.Pod {
	var out []*v1.Pod
	for i := range n {
		name := fmt.Sprintf("%s-on-node-%d", owner, i)
		if terminating {
			name += "-terminating"
		}
		p := replica(owner, name)
		if terminating {
			p = p.Terminating()
		}
		out = append(out, p.Obj())
	}
	return out
}

// outcome is a Filter status and a Score, as compared.
type outcome struct {
	Code    fwk.Code
	Reasons []string
	Score   int64
}

// run filters and scores pod on ni as the framework does (PreFilter, Filter
// unless PreFilter skips it, then PreScore and Score, one CycleState).
func run(t *testing.T, p *Plugin, pod *v1.Pod, ni fwk.NodeInfo) outcome {
	t.Helper()
	ctx := context.Background()
	state := framework.NewCycleState()
	_, status := p.PreFilter(ctx, state, pod, []fwk.NodeInfo{ni})
	switch {
	case status.IsSkip():
		status = nil
	case !status.IsSuccess():
		t.Fatalf("PreFilter: %v", status)
	default:
		status = p.Filter(ctx, state, pod, ni)
	}
	if s := p.PreScore(ctx, state, pod, []fwk.NodeInfo{ni}); !s.IsSuccess() {
		t.Fatalf("PreScore: %v", s)
	}
	score, sst := p.Score(ctx, state, pod, ni)
	if !sst.IsSuccess() {
		t.Fatalf("Score: %v", sst)
	}
	got := outcome{Code: fwk.Success, Score: score}
	if status != nil {
		got.Code, got.Reasons = status.Code(), status.Reasons()
	}
	return got
}

func psi(cpuSome, memSome, ioSome, memFull float64) topology.PSI {
	return topology.PSI{CPU: topology.Pressure{Some: cpuSome}, Memory: topology.Pressure{Some: memSome, Full: memFull}, IO: topology.Pressure{Some: ioSome}}
}

// TestNodeLoadLoadTerm: with the pod-count term off, the score is the load
// score, 1 - CPU, minus the penalty in the penalty zone, minus half the
// worst "some" pressure (the PSI term); the filter applies the thresholds.
func TestNodeLoadLoadTerm(t *testing.T) {
	const off = `"podCountWeight": 0`
	tests := []struct {
		name string
		args string
		// load is the node's report; nil: it has sent none.
		load *topology.Load
		want outcome
	}{
		{name: "idle node scores high", load: &topology.Load{CPU: 0.1}, want: outcome{Code: fwk.Success, Score: 90}},
		{name: "busier node scores lower", load: &topology.Load{CPU: 0.5}, want: outcome{Code: fwk.Success, Score: 50}},
		{name: "in the penalty zone the penalty applies", load: &topology.Load{CPU: 0.72}, want: outcome{Code: fwk.Success, Score: 13}},
		{name: "at the CPU limit: filtered, resolvable", load: &topology.Load{CPU: 0.85},
			want: outcome{Code: fwk.Unschedulable, Reasons: []string{"node n: CPU utilisation 85% is at or above the 85% limit"}, Score: 0}},
		{name: "a raised limit from the args", args: `"cpuFilter": 0.95`, load: &topology.Load{CPU: 0.9},
			want: outcome{Code: fwk.Success, Score: 0}},
		{name: "PSI term: CPU pressure lowers the score by half of it", load: &topology.Load{CPU: 0.1, PSI: psi(20, 0, 0, 0)},
			want: outcome{Code: fwk.Success, Score: 80}},
		{name: "PSI term: the worst of the three pressures counts", load: &topology.Load{CPU: 0.1, PSI: psi(10, 40, 20, 0)},
			want: outcome{Code: fwk.Success, Score: 70}},
		{name: "PSI term: full pressure does not score", load: &topology.Load{CPU: 0.1, PSI: psi(0, 0, 0, 50)},
			want: outcome{Code: fwk.Success, Score: 90}},
		{name: "PSI term: the score stops at 0", load: &topology.Load{CPU: 0.8, PSI: psi(100, 0, 0, 0)},
			want: outcome{Code: fwk.Success, Score: 0}},
		{name: "memory pressure at the PSI limit: filtered", args: `"psi": {"memory": {"full": 20}}`, load: &topology.Load{CPU: 0.1, PSI: psi(0, 0, 0, 25)},
			want: outcome{Code: fwk.Unschedulable, Reasons: []string{"node n: memory pressure (full, avg10) 25.0% is at or above the 20.0% limit"}, Score: 90}},
		{name: "no fresh report: passes with the neutral score",
			want: outcome{Code: fwk.Success, Score: 50}},
		{name: "no fresh report, missingLoad Neutral: the same", args: `"missingLoad": "Neutral"`,
			want: outcome{Code: fwk.Success, Score: 50}},
		{name: "no fresh report, missingLoad Filter: filtered, resolvable", args: `"missingLoad": "Filter"`,
			want: outcome{Code: fwk.Unschedulable, Reasons: []string{"node n: no fresh load report (missingLoad: Filter)"}, Score: 50}},
		{name: "a fresh report, missingLoad Filter: judged by its load", args: `"missingLoad": "Filter"`, load: &topology.Load{CPU: 0.1},
			want: outcome{Code: fwk.Success, Score: 90}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reports := map[string]topology.Load{}
			if tt.load != nil {
				reports["n"] = *tt.load
			}
			args := "{" + off + "}"
			if tt.args != "" {
				args = "{" + off + ", " + tt.args + "}"
			}
			p := newPlugin(t, loads(t, reports), args)
			got := run(t, p, replica("web", "p").Obj(), nodeInfo("n"))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestNodeLoadPodCountTerm: the pod-count term is 1 / (1 + the workload's
// pods on the node), weighted by podCountWeight against the load term.
func TestNodeLoadPodCountTerm(t *testing.T) {
	tests := []struct {
		name   string
		args   string
		load   *topology.Load
		pod    *v1.Pod
		onNode []*v1.Pod
		want   int64
	}{
		{name: "only the term: no replica on the node", args: `{"podCountWeight": 1}`, want: 100},
		{name: "only the term: one replica", args: `{"podCountWeight": 1}`, onNode: pods("web", 1, false), want: 50},
		{name: "only the term: three replicas", args: `{"podCountWeight": 1}`, onNode: pods("web", 3, false), want: 25},
		{name: "other workloads' pods do not count", args: `{"podCountWeight": 1}`, onNode: pods("db", 3, false), want: 100},
		{name: "replicas being deleted do not count", args: `{"podCountWeight": 1}`,
			onNode: append(pods("web", 2, true), pods("web", 1, false)...), want: 50},
		{name: "a bare pod has no replicas", args: `{"podCountWeight": 1}`, pod: st.MakePod().Name("bare").UID("uid-bare").Obj(),
			onNode: pods("web", 2, false), want: 100},
		{name: "the default weight, 0.5: half load, half pod count", load: &topology.Load{CPU: 0.2},
			onNode: pods("web", 1, false), want: 65},
		{name: "the default weight without a load report", want: 75},
		{name: "a weight of 0.25", args: `{"podCountWeight": 0.25}`, load: &topology.Load{CPU: 0.6},
			onNode: pods("web", 3, false), want: 36},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reports := map[string]topology.Load{}
			if tt.load != nil {
				reports["n"] = *tt.load
			}
			pod := tt.pod
			if pod == nil {
				pod = replica("web", "p").Obj()
			}
			for _, p := range tt.onNode {
				p.Spec.NodeName = "n"
			}
			p := newPlugin(t, loads(t, reports), tt.args, tt.onNode...)
			got := run(t, p, pod, nodeInfo("n", tt.onNode...))
			if diff := cmp.Diff(outcome{Code: fwk.Success, Score: tt.want}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestNodeLoadSpreadsReplicas places a ReplicaSet's replicas one at a time on
// the best-scoring of a site's three equally loaded nodes, as the scheduler
// does when NodeLoad breaks the tie: with the pod-count term they spread
// evenly; without it they pile on one node.
func TestNodeLoadSpreadsReplicas(t *testing.T) {
	tests := []struct {
		name string
		args string
		want map[string]int
	}{
		{name: "default weight", want: map[string]int{"n0": 2, "n1": 2, "n2": 2}},
		{name: "term off", args: `{"podCountWeight": 0}`, want: map[string]int{"n0": 6, "n1": 0, "n2": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reports := map[string]topology.Load{"n0": {CPU: 0.3}, "n1": {CPU: 0.3}, "n2": {CPU: 0.3}}
			p := newPlugin(t, loads(t, reports), tt.args)
			var nodes []*framework.NodeInfo
			for _, name := range []string{"n0", "n1", "n2"} {
				ni := framework.NewNodeInfo()
				ni.SetNode(st.MakeNode().Name(name).Obj())
				nodes = append(nodes, ni)
			}
			got := map[string]int{"n0": 0, "n1": 0, "n2": 0}
			for i := range 6 {
				pod := replica("web", fmt.Sprintf("web-%d", i)).Obj()
				best, bestScore := -1, int64(-1)
				for j, ni := range nodes {
					if o := run(t, p, pod, ni); o.Code == fwk.Success && o.Score > bestScore {
						best, bestScore = j, o.Score
					}
				}
				// The scheduler assumes the pod on the node, then Reserve.
				nodes[best].AddPod(pod)
				if s := p.Reserve(context.Background(), framework.NewCycleState(), pod, nodes[best].Node().Name); !s.IsSuccess() {
					t.Fatalf("Reserve: %v", s)
				}
				got[nodes[best].Node().Name]++
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("replicas per node (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNodeLoadRejectsBadArgs(t *testing.T) {
	tests := []struct{ args, want string }{
		{`{"cpuFiltre": 0.9}`, "NodeLoad args: pluginConfig.NodeLoad.args.cpuFiltre: Forbidden: unknown field"},
		{`{"podCountWeight": 1.5}`, "NodeLoad args: pluginConfig.NodeLoad.args.podCountWeight: Invalid value: 1.5: must be in 0..1"},
		{`{"missingLoad": "Drop"}`, `NodeLoad args: pluginConfig.NodeLoad.args.missingLoad: Unsupported value: "Drop": supported values: "Neutral", "Filter"`},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			_, err := Factory(loads(t, nil), schedmetrics.Register())(context.Background(), &runtime.Unknown{Raw: []byte(tt.args)}, nil)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestNodeLoadSkipsFilter: PreFilter skips Filter exactly when Filter would
// pass every node: no fresh load at a threshold and missingLoad Neutral.
// When it does not skip, Filter still judges each node by its own report.
func TestNodeLoadSkipsFilter(t *testing.T) {
	tests := []struct {
		name    string
		args    string
		reports map[string]topology.Load
		skip    bool
		// rejected are the nodes Filter rejects when it runs.
		rejected []string
	}{
		{name: "no report at all", skip: true},
		{name: "every report under the thresholds", reports: map[string]topology.Load{"a": {CPU: 0.2}, "b": {CPU: 0.84}}, skip: true},
		{name: "one node at the CPU limit", reports: map[string]topology.Load{"a": {CPU: 0.2}, "b": {CPU: 0.85}}, rejected: []string{"b"}},
		{name: "one node at a PSI limit", args: `{"psi": {"io": {"some": 30}}}`,
			reports: map[string]topology.Load{"a": {CPU: 0.2, PSI: psi(0, 0, 30, 0)}, "b": {CPU: 0.2}}, rejected: []string{"a"}},
		{name: "missingLoad Filter", args: `{"missingLoad": "Filter"}`, reports: map[string]topology.Load{"a": {CPU: 0.2}}, rejected: []string{"b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPlugin(t, loads(t, tt.reports), tt.args)
			var nodes []fwk.NodeInfo
			for _, name := range []string{"a", "b", "c"} {
				nodes = append(nodes, nodeInfo(name))
			}
			ctx, pod := context.Background(), replica("web", "p").Obj()
			state := framework.NewCycleState()
			_, status := p.PreFilter(ctx, state, pod, nodes)
			if got := status.IsSkip(); got != tt.skip {
				t.Fatalf("PreFilter skips Filter: %v (%v), want %v", got, status, tt.skip)
			}
			if tt.skip {
				return
			}
			var rejected []string
			for _, ni := range nodes {
				if s := p.Filter(ctx, state, pod, ni); !s.IsSuccess() {
					rejected = append(rejected, ni.Node().Name)
				}
			}
			if diff := cmp.Diff(tt.rejected, rejected); diff != "" {
				t.Errorf("rejected nodes (-want +got):\n%s", diff)
			}
		})
	}
}
