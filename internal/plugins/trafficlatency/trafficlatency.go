// Package trafficlatency is the TrafficLatency scheduler plugin: it scores a
// node by how much one more replica of the pod's workload on the node's site
// would lower the workload's traffic-weighted mean RTT, the same marginal gain
// ning's planner and rescheduler use, and filters out the sites that hold as
// many replicas of the workload as their limit (policy.SiteLimits: the pod's
// ning.io/max-per-site, the site's capacity).
package trafficlatency

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/plugins/pluginargs"
	"github.com/ning-edge/ning/internal/plugins/siteindex"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/schedmetrics"
	"github.com/ning-edge/ning/internal/topology"
)

// Name is the plugin's name in a KubeSchedulerConfiguration.
const Name = "TrafficLatency"

const (
	stateKey       fwk.StateKey = "PreScore" + Name
	filterStateKey fwk.StateKey = "PreFilter" + Name
)

// Store is what the plugin reads: RTTs between sites, traffic per site and
// the sites' capacities from a topology file.
type Store interface {
	Matrix(sites []string) [][]float64
	Traffic() map[string]float64
	RTTVersion() uint64
	Capacities() map[string]int
}

// Plugin scores nodes by the marginal traffic-weighted RTT gain of their site.
type Plugin struct {
	args    configv1alpha1.TrafficLatencyArgs
	store   Store
	index   *siteindex.Index
	handle  framework.Handle
	metrics *schedmetrics.Metrics
	warned  sync.Once
	// badCapacity logs the first malformed ning.io/site-capacity label.
	badCapacity sync.Once

	rtt topology.MatrixCache
}

var (
	_ framework.PreFilterPlugin = &Plugin{}
	_ framework.FilterPlugin    = &Plugin{}
	_ framework.PreScorePlugin  = &Plugin{}
	_ framework.ScorePlugin     = &Plugin{}
	_ framework.BindPlugin      = &Plugin{}
	_ framework.ReservePlugin   = &Plugin{}
	_ framework.ScoreExtensions = &Plugin{}
)

// Factory returns the plugin's factory, reading from store.
func Factory(store Store, m *schedmetrics.Metrics) frameworkruntime.PluginFactory {
	return func(_ context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
		p := &Plugin{store: store, handle: h, metrics: m}
		if err := pluginargs.Decode(Name, obj, &p.args); err != nil {
			return nil, err
		}
		index, err := siteindex.New(h.SharedInformerFactory(), p.args.SiteLabel, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", Name, err)
		}
		p.index = index
		return p, nil
	}
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

// filterState is the workload's limits and where its replicas run.
type filterState struct {
	limits policy.SiteLimits
	count  map[string]int
}

func (s *filterState) Clone() fwk.StateData { return s }

// PreFilter reads the pod's ning.io/max-per-site label and the sites'
// capacities (the topology file's, the nodes' ning.io/site-capacity
// labels). Without any limit Filter is skipped; a malformed label rejects
// the pod, as a malformed delay label does.
func (p *Plugin) PreFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*framework.PreFilterResult, *fwk.Status) {
	fromNodes, bad := p.index.SiteCapacities()
	if len(bad) > 0 {
		p.metrics.MalformedLimits.WithLabelValues("site_capacity").Inc()
		p.badCapacity.Do(func() {
			klog.FromContext(ctx).Info("A node's "+policy.LabelSiteCapacity+" label is malformed and ignored (logged once; see ning_scheduler_malformed_limit_labels_total)", "err", bad[0])
		})
	}
	limits, err := policy.LimitsOf(pod, policy.SiteCapacities(p.store.Capacities(), fromNodes))
	if err != nil {
		p.metrics.MalformedLimits.WithLabelValues("max_per_site").Inc()
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	if limits.None() {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	state.Write(filterStateKey, &filterState{limits: limits, count: p.index.Counts(policy.WorkloadOf(pod).UID, pod.UID)})
	return nil, nil
}

// PreFilterExtensions returns nil: preemption removes pods of lower
// priority, never the workload's own replicas, so it frees no room.
func (p *Plugin) PreFilterExtensions() framework.PreFilterExtensions { return nil }

// Filter rejects a node whose site holds its limit of the workload's
// replicas. It is UnschedulableAndUnresolvable: preempting other pods frees
// no room; the pod is retried when a replica goes.
func (p *Plugin) Filter(_ context.Context, state fwk.CycleState, _ *v1.Pod, ni fwk.NodeInfo) *fwk.Status {
	data, err := state.Read(filterStateKey)
	if err != nil {
		return fwk.AsStatus(fmt.Errorf("reading %s state: %w", Name, err))
	}
	st, ok := data.(*filterState)
	if !ok {
		return fwk.AsStatus(fmt.Errorf("%s state has type %T", Name, data))
	}
	site := p.siteOf(ni.Node())
	if n := st.count[site]; st.limits.Full(site, n) {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, st.limits.Reason(site, n))
	}
	return nil
}

// preScoreState holds one raw score per site and what the placement note
// needs.
type preScoreState struct {
	sites []string
	index map[string]int
	gains placement.Gains
	raw   []int64
	// prob and current are the workload's problem and placement, for the
	// note's description of the gain.
	prob    *placement.Problem
	current placement.Placement
	// scored marks, per site, that Score saw one of its nodes: the
	// candidate sites (Score runs in parallel over the nodes).
	scored []atomic.Bool
}

func (s *preScoreState) Clone() fwk.StateData { return s }

// PreScore reads where the pod's workload runs now (bound pods from the
// informer, assumed ones from Reserve) and computes each site's score once:
// O(sites x sites with traffic), independent of the number of nodes and pods.
func (p *Plugin) PreScore(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	traffic := p.store.Traffic()
	total := 0.0
	for _, v := range traffic {
		total += v
	}
	if total <= 0 {
		p.metrics.MissingData.WithLabelValues(Name, "traffic").Inc()
		p.warned.Do(func() {
			klog.FromContext(ctx).Info("No fresh traffic data: TrafficLatency scores every node the same until some arrives (logged once)")
		})
		return fwk.NewStatus(fwk.Skip)
	}
	count := p.index.Counts(policy.WorkloadOf(pod).UID, pod.UID)
	st := &preScoreState{sites: p.index.Sites()}
	st.scored = make([]atomic.Bool, len(st.sites))
	st.index = make(map[string]int, len(st.sites))
	for i, site := range st.sites {
		st.index[site] = i
	}
	st.prob = policy.Problem(st.sites, p.matrix(st.sites), traffic, p.args.PerReplicaRPS)
	st.current = policy.Current(st.sites, count)
	r, err := policy.Rank(ctx, st.prob, st.current)
	if err != nil {
		return fwk.AsStatus(fmt.Errorf("%s: %w", Name, err))
	}
	st.gains, st.raw = r.Gains, r.Raw
	state.Write(stateKey, st)
	return nil
}

func (p *Plugin) matrix(sites []string) [][]float64 {
	return p.rtt.Matrix(p.store, sites)
}

func (p *Plugin) siteOf(n *v1.Node) string {
	return topology.SiteOf(n.Name, n.Labels, p.args.SiteLabel)
}

func readState(state fwk.CycleState) (*preScoreState, error) {
	data, err := state.Read(stateKey)
	if err != nil {
		return nil, err
	}
	st, ok := data.(*preScoreState)
	if !ok {
		return nil, fmt.Errorf("%s state has type %T", Name, data)
	}
	return st, nil
}

// Score looks up the node's site's raw score; NormalizeScore scales it.
func (p *Plugin) Score(_ context.Context, state fwk.CycleState, _ *v1.Pod, ni fwk.NodeInfo) (int64, *fwk.Status) {
	st, err := readState(state)
	if err != nil {
		return 0, fwk.AsStatus(fmt.Errorf("reading %s state: %w", Name, err))
	}
	if i, ok := st.index[p.siteOf(ni.Node())]; ok {
		if !st.scored[i].Load() {
			st.scored[i].Store(true)
		}
		return st.raw[i], nil
	}
	return 0, nil
}

// ScoreExtensions returns the plugin: scores are normalised over the nodes
// being scored, so a site that no candidate node is in (an unmeasured one,
// say) does not flatten the scale.
func (p *Plugin) ScoreExtensions() framework.ScoreExtensions { return p }

// NormalizeScore maps the candidates' raw scores linearly onto
// 0..MaxNodeScore: the site the planner would fill next gets the maximum.
func (p *Plugin) NormalizeScore(_ context.Context, _ fwk.CycleState, _ *v1.Pod, scores framework.NodeScoreList) *fwk.Status {
	if len(scores) == 0 {
		return nil
	}
	raw := make([]int64, len(scores))
	for i, s := range scores {
		raw[i] = s.Score
	}
	for i, v := range policy.Normalise(raw, framework.MaxNodeScore) {
		scores[i].Score = v
	}
	return nil
}

// Reserve counts the pod in its site at once, so that the next replica of its
// workload sees it before the binding reaches the informer.
func (p *Plugin) Reserve(_ context.Context, _ fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	p.index.Assume(pod, nodeName)
	return nil
}

// Unreserve forgets a pod whose scheduling failed after Reserve.
func (p *Plugin) Unreserve(_ context.Context, _ fwk.CycleState, pod *v1.Pod, _ string) {
	p.index.Forget(pod)
}

// Bind binds the pod as DefaultBinder does, with the placement's note as the
// pod's ning.io/placement annotation (policy.AnnotationPlacement): the chosen
// site, its RTT gain and served traffic, and the runner-up. The apiserver
// copies a Binding's annotations to the pod, so every pod says why it is
// where it is without a request beyond its binding (an Event per pod would
// double the scheduler's writes). Without scores (no traffic data) it skips,
// and DefaultBinder binds.
func (p *Plugin) Bind(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	note, best, ok := p.note(state, nodeName)
	if !ok {
		return fwk.NewStatus(fwk.Skip)
	}
	binding := &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
			Annotations: map[string]string{policy.AnnotationPlacement: note}},
		Target: v1.ObjectReference{Kind: "Node", Name: nodeName},
	}
	if c := p.handle.APICacher(); c != nil {
		onFinish, err := c.BindPod(binding)
		if err == nil {
			err = c.WaitOnFinish(ctx, onFinish)
		}
		if err != nil {
			return fwk.AsStatus(err)
		}
	} else if err := p.handle.ClientSet().CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fwk.AsStatus(err)
	}
	p.metrics.Placements.WithLabelValues(fmt.Sprint(best)).Inc()
	klog.FromContext(ctx).V(4).Info("ning placement", "pod", klog.KObj(pod), "node", nodeName, "note", note)
	return nil
}

// note describes the placement on nodeName from PreScore's state, and says
// whether it is the best-ranked candidate site; false when scoring was
// skipped or the node's site is unknown.
func (p *Plugin) note(state fwk.CycleState, nodeName string) (string, bool, bool) {
	st, err := readState(state)
	if err != nil {
		return "", false, false // scoring was skipped (no traffic data)
	}
	site, ok := p.index.SiteOfNode(nodeName)
	if !ok {
		return "", false, false
	}
	chosen, ok := st.index[site]
	if !ok {
		return "", false, false
	}
	candidate := make([]bool, len(st.sites))
	for j := range st.sites {
		candidate[j] = st.scored[j].Load()
	}
	best, runner := policy.Leaders(st.raw, candidate, chosen)
	msg := fmt.Sprintf("Placed in site %s (node %s): %s", site, nodeName,
		policy.DescribeGain(st.prob, st.current, chosen, st.gains.Share[chosen]))
	if runner >= 0 {
		msg += fmt.Sprintf("; runner-up site %s: %s", st.sites[runner],
			policy.DescribeGain(st.prob, st.current, runner, st.gains.Share[runner]))
	}
	return msg, chosen == best, true
}
