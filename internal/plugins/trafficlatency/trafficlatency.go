// Package trafficlatency is the TrafficLatency scheduler plugin: it scores a
// node by how much one more replica of the pod's workload on the node's site
// would lower the workload's traffic-weighted mean RTT, the same marginal gain
// ning's planner and rescheduler use.
package trafficlatency

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/plugins/pluginargs"
	"github.com/ning-edge/ning/internal/schedmetrics"
	"github.com/ning-edge/ning/internal/topology"
)

// Name is the plugin's name in a KubeSchedulerConfiguration.
const Name = "TrafficLatency"

const stateKey fwk.StateKey = "PreScore" + Name

// Store is what the plugin reads: RTTs between sites and traffic per site.
type Store interface {
	Matrix(sites []string) [][]float64
	Traffic() map[string]float64
	Version() uint64
}

// Plugin scores nodes by the marginal traffic-weighted RTT gain of their site.
type Plugin struct {
	args    configv1alpha1.TrafficLatencyArgs
	store   Store
	handle  framework.Handle
	metrics *schedmetrics.Metrics
	warned  sync.Once

	mu    sync.Mutex
	cache matrixCache
}

// matrixCache keeps the RTT matrix of the last site set for a second, so that
// a burst of pods does not rebuild it for each one.
type matrixCache struct {
	key     string
	version uint64
	built   time.Time
	rtt     [][]float64
}

var (
	_ framework.PreScorePlugin = &Plugin{}
	_ framework.ScorePlugin    = &Plugin{}
	_ framework.PostBindPlugin = &Plugin{}
)

// Factory returns the plugin's factory, reading from store.
func Factory(store Store, m *schedmetrics.Metrics) frameworkruntime.PluginFactory {
	return func(_ context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
		p := &Plugin{store: store, handle: h, metrics: m}
		if err := pluginargs.Decode(Name, obj, &p.args); err != nil {
			return nil, err
		}
		return p, nil
	}
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

// preScoreState holds one score per site and what the Event needs.
type preScoreState struct {
	sites  []string
	index  map[string]int
	gains  placement.Gains
	scores []int64
	best   int
}

func (s *preScoreState) Clone() fwk.StateData { return s }

// WorkloadOf returns the UID that groups a pod with its replicas: its
// controller's (ReplicaSet, StatefulSet, ...), or its own for a bare pod.
func WorkloadOf(pod *v1.Pod) types.UID {
	for i := range pod.OwnerReferences {
		if ref := &pod.OwnerReferences[i]; ref.Controller != nil && *ref.Controller {
			return ref.UID
		}
	}
	return pod.UID
}

// PreScore counts where the pod's workload runs now (scheduled and assumed
// pods, from the scheduler's snapshot) and computes each site's score once.
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
	all, err := p.handle.SnapshotSharedLister().NodeInfos().List()
	if err != nil {
		return fwk.AsStatus(fmt.Errorf("listing nodes: %w", err))
	}
	workload := WorkloadOf(pod)
	count := map[string]int{}
	for _, ni := range all {
		site := p.siteOf(ni.Node())
		n := count[site]
		for _, pi := range ni.GetPods() {
			if other := pi.GetPod(); other.UID != pod.UID && WorkloadOf(other) == workload {
				n++
			}
		}
		count[site] = n
	}
	st := &preScoreState{index: make(map[string]int, len(count))}
	for site := range count {
		st.sites = append(st.sites, site)
	}
	sort.Strings(st.sites)
	prob := &placement.Problem{
		Sites:         st.sites,
		Traffic:       make([]float64, len(st.sites)),
		Capacity:      make([]int, len(st.sites)),
		RTT:           p.matrix(st.sites),
		PerReplicaRPS: p.args.PerReplicaRPS,
	}
	current := make(placement.Placement, len(st.sites))
	for i, site := range st.sites {
		st.index[site] = i
		prob.Traffic[i] = traffic[site]
		prob.Capacity[i] = placement.Unlimited
		current[i] = count[site]
	}
	prob.Replicas = current.Total() + 1
	st.gains = placement.MarginalGains(prob, current)
	st.scores, st.best = normalise(st.gains, current)
	state.Write(stateKey, st)
	return nil
}

// normalise maps gains to 0..MaxNodeScore: the site Plan would pick next
// scores the maximum, the least useful site 0, and the others in proportion to
// their RTT gain or, where no site lowers the RTT, to the traffic they would
// serve per replica.
func normalise(g placement.Gains, current placement.Placement) ([]int64, int) {
	best := 0
	for j := range current {
		if g.Better(current, j, best) {
			best = j
		}
	}
	values := g.Gain
	if g.Gain[best] <= 1e-9 {
		values = g.Share
	}
	top, bottom := values[best], values[best]
	for _, v := range values {
		bottom = math.Min(bottom, v)
	}
	scores := make([]int64, len(current))
	if top-bottom <= 1e-9 {
		// No site is better for the RTT or the load: as Plan does, prefer
		// the sites with the fewest replicas.
		fewest := current[best]
		for _, n := range current {
			fewest = min(fewest, n)
		}
		for j, n := range current {
			if n == fewest && n < current.Total() {
				scores[j] = 1
			}
		}
		return scores, best
	}
	for j, v := range values {
		scores[j] = int64(math.Round(float64(framework.MaxNodeScore-1) * (v - bottom) / (top - bottom)))
	}
	scores[best] = framework.MaxNodeScore
	return scores, best
}

func (p *Plugin) matrix(sites []string) [][]float64 {
	key := strings.Join(sites, "\x00")
	v := p.store.Version()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cache.key == key && p.cache.version == v && time.Since(p.cache.built) < time.Second {
		return p.cache.rtt
	}
	p.cache = matrixCache{key: key, version: v, built: time.Now(), rtt: p.store.Matrix(sites)}
	return p.cache.rtt
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

// Score looks up the node's site.
func (p *Plugin) Score(_ context.Context, state fwk.CycleState, _ *v1.Pod, ni fwk.NodeInfo) (int64, *fwk.Status) {
	st, err := readState(state)
	if err != nil {
		return 0, fwk.AsStatus(fmt.Errorf("reading %s state: %w", Name, err))
	}
	if i, ok := st.index[p.siteOf(ni.Node())]; ok {
		return st.scores[i], nil
	}
	return 0, nil
}

// ScoreExtensions returns nil: scores are already in 0..MaxNodeScore.
func (p *Plugin) ScoreExtensions() framework.ScoreExtensions { return nil }

// PostBind records an Event on the pod naming the chosen site, its RTT gain
// and served traffic, and the runner-up.
func (p *Plugin) PostBind(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeName string) {
	st, err := readState(state)
	if err != nil {
		return // scoring was skipped (no traffic data); nothing to explain
	}
	ni, err := p.handle.SnapshotSharedLister().NodeInfos().Get(nodeName)
	if err != nil {
		return
	}
	site := p.siteOf(ni.Node())
	chosen, ok := st.index[site]
	if !ok {
		return
	}
	p.metrics.Placements.WithLabelValues(fmt.Sprint(chosen == st.best)).Inc()
	runner := -1
	for j := range st.sites {
		if j != chosen && (runner < 0 || st.scores[j] > st.scores[runner]) {
			runner = j
		}
	}
	msg := fmt.Sprintf("Placed in site %s (node %s): TrafficLatency score %d, lowers the traffic-weighted mean RTT by %.2f ms, %.1f req/s per replica",
		site, nodeName, st.scores[chosen], st.gains.Gain[chosen], st.gains.Share[chosen])
	if runner >= 0 {
		msg += fmt.Sprintf("; runner-up site %s: score %d, %.2f ms, %.1f req/s per replica",
			st.sites[runner], st.scores[runner], st.gains.Gain[runner], st.gains.Share[runner])
	}
	p.handle.EventRecorder().Eventf(pod, nil, v1.EventTypeNormal, "NingPlacement", "Scheduling", "%s", msg)
	klog.FromContext(ctx).V(4).Info("ning placement", "pod", klog.KObj(pod), "detail", msg)
}
