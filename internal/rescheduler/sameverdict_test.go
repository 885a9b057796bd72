package rescheduler

import (
	"context"
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/queuesort"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"
	clocktesting "k8s.io/utils/clock/testing"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/extender"
	"github.com/ning-edge/ning/internal/plugins/networklatency"
	"github.com/ning-edge/ning/internal/plugins/trafficlatency"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/schedmetrics"
	"github.com/ning-edge/ning/internal/testcluster"
	"github.com/ning-edge/ning/internal/topology"
)

// TestSameVerdict feeds one cluster state (a real apiserver, its informers,
// one topology store) through the scheduler plugins (NetworkLatency's
// PreFilter and Filter, TrafficLatency's PreScore and Score), the extender's
// /filter and /prioritize, and the rescheduler's prediction of where the
// scheduler puts a replacement, and requires the same filter verdict for
// every node and the same ranking of sites.
//
// Sites a, b, c, d, one node each: a-b 10 ms, a-c 40 ms, b-c 30 ms, d's RTTs
// unknown; traffic a 100, b 10, c 5. web's replica runs on c-0.
func TestSameVerdict(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cp := testcluster.Start(t)
	nodes := []string{"a-0", "b-0", "c-0", "d-0"}
	for _, name := range nodes {
		if _, err := testcluster.CreateReadyNode(ctx, cp.Client, testcluster.Node{Name: name, Site: name[:1]}); err != nil {
			t.Fatal(err)
		}
	}
	running := makePod("web-0").on("c-0").owner("ReplicaSet", "web").obj()
	running.Spec.Containers = []v1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}
	running.UID = ""
	created, err := cp.Client.CoreV1().Pods("default").Create(ctx, running, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(time.Now())
	store := lineStore(t, clk, map[string]float64{"a": 100, "b": 10, "c": 5},
		map[[2]string]float64{{"a", "b"}: 10, {"a", "c"}: 40, {"b", "c"}: 30})

	tests := []struct {
		name       string
		labels     map[string]string
		unknownRTT configv1alpha1.UnknownRTTPolicy
		wantPass   []string
	}{
		{"no constraint", nil, configv1alpha1.FailClosed, []string{"a-0", "b-0", "c-0", "d-0"}},
		{"within 35 ms of a, unknown RTTs fail closed", map[string]string{"delay_a": "35"}, configv1alpha1.FailClosed, []string{"a-0", "b-0"}},
		{"within 35 ms of a, unknown RTTs fail open", map[string]string{"delay_a": "35"}, configv1alpha1.FailOpen, []string{"a-0", "b-0", "d-0"}},
		{"within 35 ms of node b-0", map[string]string{"delay_b-0": "35"}, configv1alpha1.FailClosed, []string{"a-0", "b-0", "c-0"}},
		{"within 5 ms of the pod web-0", map[string]string{"delay_web-0": "5"}, configv1alpha1.FailClosed, []string{"c-0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := makePod("web-new").owner("ReplicaSet", "web").obj()
			pod.OwnerReferences[0].UID = created.OwnerReferences[0].UID
			pod.Labels = tt.labels
			s := newStates(ctx, t, cp, store, tt.unknownRTT)

			// Filter verdicts.
			plugin := s.pluginFilter(t, pod, nodes)
			ext := s.extenderFilter(t, pod, nodes)
			resched := s.reschedulerUsable(t, pod)
			if diff := cmp.Diff(tt.wantPass, plugin); diff != "" {
				t.Errorf("NetworkLatency passes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(plugin, ext); diff != "" {
				t.Errorf("extender passes other nodes than NetworkLatency (-plugin +extender):\n%s", diff)
			}
			if diff := cmp.Diff(plugin, resched); diff != "" {
				t.Errorf("the rescheduler predicts other usable nodes than NetworkLatency (-plugin +rescheduler):\n%s", diff)
			}

			// Ranking among the nodes that pass. The extender's 1..10 scale
			// may tie sites that TrafficLatency's 0..100 tells apart, but
			// never orders two the other way round.
			ps, es := s.pluginScores(t, pod, plugin), s.extenderScores(t, pod, plugin)
			for a := range ps {
				for b := range ps {
					if ps[a] > ps[b] && es[a] < es[b] {
						t.Errorf("TrafficLatency ranks %s (%d) above %s (%d), the extender below (%d < %d)", a, ps[a], b, ps[b], es[a], es[b])
					}
				}
			}
			best := rank(ps)[0]
			if got := rank(es)[0]; got != best {
				t.Errorf("the extender's best node is %s, TrafficLatency's %s (%v, %v)", got, best, es, ps)
			}
			if got := s.reschedulerChoice(t, pod); got != best[:1] {
				t.Errorf("the rescheduler predicts the replacement in site %s; TrafficLatency's best node is %s (%v)", got, best, ps)
			}
		})
	}
}

type states struct {
	fw    framework.Framework
	f     informers.SharedInformerFactory
	ext   *extender.Extender
	mv    *mover
	store *topology.Store
	pods  func() []*v1.Pod
	nodes func() []*v1.Node
	nl    *networklatency.Plugin
	tl    *trafficlatency.Plugin
}

func newStates(ctx context.Context, t *testing.T, cp *testcluster.ControlPlane, store *topology.Store, unknownRTT configv1alpha1.UnknownRTTPolicy) *states {
	t.Helper()
	s := &states{store: store, f: informers.NewSharedInformerFactory(cp.Client, 0)}
	fw, err := tf.NewFramework(ctx, []tf.RegisterPluginFunc{
		tf.RegisterQueueSortPlugin(queuesort.Name, queuesort.New),
		tf.RegisterBindPlugin(defaultbinder.Name, defaultbinder.New),
	}, "ning-scheduler", frameworkruntime.WithInformerFactory(s.f), frameworkruntime.WithClientSet(cp.Client))
	if err != nil {
		t.Fatal(err)
	}
	s.fw = fw
	m := schedmetrics.Register()
	args := func(v any) runtime.Object {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return &runtime.Unknown{Raw: b}
	}
	nl, err := networklatency.Factory(store, m)(ctx, args(configv1alpha1.NetworkLatencyArgs{UnknownRTT: unknownRTT}), fw)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := trafficlatency.Factory(store, m)(ctx, nil, fw)
	if err != nil {
		t.Fatal(err)
	}
	s.nl, s.tl = nl.(*networklatency.Plugin), tl.(*trafficlatency.Plugin)
	em, err := extender.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cfg := extender.Config{}
	cfg.NetworkLatency.UnknownRTT = unknownRTT
	if s.ext, err = extender.New(s.f, store, cfg, em, discard()); err != nil {
		t.Fatal(err)
	}
	rc := DefaultConfig()
	rc.UnknownRTT = unknownRTT
	s.mv = newMover(rc, store, testMetrics(t), discard(), clocktesting.NewFakeClock(time.Now()))
	podLister, nodeLister := s.f.Core().V1().Pods().Lister(), s.f.Core().V1().Nodes().Lister()
	cctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	s.f.Start(cctx.Done())
	s.f.WaitForCacheSync(cctx.Done())
	s.pods = func() []*v1.Pod { ps, _ := podLister.List(everything()); return ps }
	s.nodes = func() []*v1.Node { ns, _ := nodeLister.List(everything()); return ns }
	// The plugins' index fills from informer handlers: wait for web-0.
	err = wait.PollUntilContextTimeout(cctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		probe := makePod("probe").obj()
		probe.Labels = map[string]string{"delay_web-0": "1000"}
		st := framework.NewCycleState()
		_, status := s.nl.PreFilter(cctx, st, probe, nil)
		return status.IsSuccess() && len(s.nodes()) == 4, nil
	})
	if err != nil {
		t.Fatalf("caches never caught up: %v", err)
	}
	return s
}

func (s *states) nodeInfo(t *testing.T, name string) fwk.NodeInfo {
	t.Helper()
	n, err := s.f.Core().V1().Nodes().Lister().Get(name)
	if err != nil {
		t.Fatal(err)
	}
	ni := framework.NewNodeInfo()
	ni.SetNode(n)
	return ni
}

func (s *states) pluginFilter(t *testing.T, pod *v1.Pod, nodes []string) []string {
	t.Helper()
	st := framework.NewCycleState()
	_, status := s.nl.PreFilter(context.Background(), st, pod, nil)
	pass := []string{}
	if status.IsSkip() {
		return append(pass, nodes...)
	}
	if !status.IsSuccess() {
		t.Fatalf("PreFilter: %v", status)
	}
	for _, name := range nodes {
		if s.nl.Filter(context.Background(), st, pod, s.nodeInfo(t, name)).IsSuccess() {
			pass = append(pass, name)
		}
	}
	if len(pass) == 0 {
		// PostFilter fails open, and the pod is retried.
		s.nl.PostFilter(context.Background(), st, pod, nil)
		return s.pluginFilter(t, pod, nodes)
	}
	return pass
}

func (s *states) extenderFilter(t *testing.T, pod *v1.Pod, nodes []string) []string {
	t.Helper()
	names := append([]string(nil), nodes...)
	res, err := s.ext.Filter(context.Background(), &extenderv1.ExtenderArgs{Pod: pod, NodeNames: &names})
	if err != nil {
		t.Fatal(err)
	}
	out := append([]string{}, *res.NodeNames...)
	sort.Strings(out)
	return out
}

// reschedulerUsable is the nodes of the sites the rescheduler expects the
// scheduler may put the pod on.
func (s *states) reschedulerUsable(t *testing.T, pod *v1.Pod) []string {
	t.Helper()
	v := newView(s.nodes(), s.pods(), s.store, DefaultConfig().SiteLabel)
	cs, err := s.mv.constraints(context.Background(), pod, v)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for j, ok := range s.mv.usableSites(pod, cs, v) {
		if ok {
			for _, n := range v.siteNodes[j] {
				out = append(out, n.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// pluginScores are TrafficLatency's normalised scores of nodes.
func (s *states) pluginScores(t *testing.T, pod *v1.Pod, nodes []string) map[string]int64 {
	t.Helper()
	st := framework.NewCycleState()
	if status := s.tl.PreScore(context.Background(), st, pod, nil); !status.IsSuccess() {
		t.Fatalf("PreScore: %v", status)
	}
	var scores framework.NodeScoreList
	for _, name := range nodes {
		sc, status := s.tl.Score(context.Background(), st, pod, s.nodeInfo(t, name))
		if !status.IsSuccess() {
			t.Fatal(status)
		}
		scores = append(scores, framework.NodeScore{Name: name, Score: sc})
	}
	if status := s.tl.NormalizeScore(context.Background(), st, pod, scores); !status.IsSuccess() {
		t.Fatal(status)
	}
	out := map[string]int64{}
	for _, sc := range scores {
		out[sc.Name] = sc.Score
	}
	return out
}

// extenderScores are the extender's /prioritize scores of nodes.
func (s *states) extenderScores(t *testing.T, pod *v1.Pod, nodes []string) map[string]int64 {
	t.Helper()
	names := append([]string(nil), nodes...)
	res, err := s.ext.Prioritize(context.Background(), &extenderv1.ExtenderArgs{Pod: pod, NodeNames: &names}) //nolint:misspell // the extender API's verb
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, h := range res {
		out[h.Host] = h.Score
	}
	return out
}

// rank orders nodes by score, best first, ties by name.
func rank(scores map[string]int64) []string {
	var out []string
	for n := range scores {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool {
		if scores[out[i]] != scores[out[j]] {
			return scores[out[i]] > scores[out[j]]
		}
		return out[i] < out[j]
	})
	return out
}

// reschedulerChoice is the site the rescheduler expects the scheduler to put
// the pod on (schedulerChoice, as nextMove uses it).
func (s *states) reschedulerChoice(t *testing.T, pod *v1.Pod) string {
	t.Helper()
	v := newView(s.nodes(), s.pods(), s.store, DefaultConfig().SiteLabel)
	cs, err := s.mv.constraints(context.Background(), pod, v)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, w := range workloads(s.pods(), "ning-scheduler") {
		if w.uid == policy.WorkloadOf(pod).UID {
			for _, p := range w.running() {
				counts[v.nodeSite[p.Spec.NodeName]]++
			}
		}
	}
	prob := policy.Problem(v.sites, v.rtt, v.traffic, 0)
	j, err := schedulerChoice(t.Context(), prob, policy.Current(v.sites, counts), s.mv.usableSites(pod, cs, v))
	if err != nil {
		t.Fatal(err)
	}
	if j < 0 {
		return "none"
	}
	return v.sites[j]
}
