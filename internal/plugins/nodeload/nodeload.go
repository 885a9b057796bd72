// Package nodeload is the NodeLoad scheduler plugin: it filters out nodes whose
// CPU utilisation or pressure (PSI) from the latest prober report is over a
// threshold (or, under missingLoad: Filter, that have no fresh report), and
// prefers idle nodes, and nodes with fewer of the workload's pods, to busy
// ones.
package nodeload

import (
	"context"
	"fmt"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/plugins/pluginargs"
	"github.com/ning-edge/ning/internal/plugins/siteindex"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/schedmetrics"
	"github.com/ning-edge/ning/internal/topology"
)

// Name is the plugin's name in a KubeSchedulerConfiguration.
const Name = "NodeLoad"

// State keys: PreFilter keeps the cycle's loads, PreScore the pod's workload.
const (
	filterStateKey fwk.StateKey = "PreFilter" + Name
	stateKey       fwk.StateKey = "PreScore" + Name
)

// Loads gives the nodes' latest loads.
type Loads interface {
	// LoadSnapshot returns every fresh load by node; the map is shared and
	// must not be modified.
	LoadSnapshot() map[string]topology.Load
}

// Plugin filters and scores nodes by load and by the workload's pods on them.
type Plugin struct {
	policy policy.NodeLoad
	loads  Loads
	// index counts the workloads' pods on each node; nil when the pod-count
	// term is off.
	index   *siteindex.Index
	metrics *schedmetrics.Metrics
	warned  sync.Once
	// filtered logs, once, that nodes without a report are filtered out.
	filtered sync.Once
}

var (
	_ framework.PreFilterPlugin = &Plugin{}
	_ framework.FilterPlugin    = &Plugin{}
	_ framework.PreScorePlugin  = &Plugin{}
	_ framework.ScorePlugin     = &Plugin{}
	_ framework.ReservePlugin   = &Plugin{}
)

// Factory returns the plugin's factory, reading loads from loads and, for
// the pod-count term, the workloads' pods per node from a siteindex fed by
// the scheduler's informers (NodeLoad reads no site: the label is the
// default).
func Factory(loads Loads, m *schedmetrics.Metrics) frameworkruntime.PluginFactory {
	return func(_ context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
		var args configv1alpha1.NodeLoadArgs
		if err := pluginargs.Decode(Name, obj, &args); err != nil {
			return nil, err
		}
		p := &Plugin{policy: policy.LoadPolicy(args), loads: loads, metrics: m}
		if p.policy.PodCountWeight > 0 {
			index, err := siteindex.New(h.SharedInformerFactory(), configv1alpha1.DefaultSiteLabel, true)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", Name, err)
			}
			p.index = index
		}
		return p, nil
	}
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

// filterState is the cycle's loads: one snapshot, read by Filter and Score
// without the store's lock per node.
type filterState struct {
	loads map[string]topology.Load
}

func (s *filterState) Clone() fwk.StateData { return s }

// PreFilter takes the cycle's loads from the store once. When no node can be
// rejected (policy.LoadFilterNeeded: under missingLoad: Neutral, no fresh
// load at a threshold) it skips Filter, which would pass every node.
func (p *Plugin) PreFilter(_ context.Context, state fwk.CycleState, _ *v1.Pod, _ []fwk.NodeInfo) (*framework.PreFilterResult, *fwk.Status) {
	loads := p.loads.LoadSnapshot()
	state.Write(filterStateKey, &filterState{loads: loads})
	if !policy.LoadFilterNeeded(p.policy, loads) {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	return nil, nil
}

// PreFilterExtensions returns nil: other pods do not change a node's load
// report.
func (p *Plugin) PreFilterExtensions() framework.PreFilterExtensions { return nil }

// Filter rejects a node over a load threshold. A node without a fresh report
// passes under missingLoad: Neutral and is rejected under Filter. Load can
// fall, a report can arrive, and evicting lower-priority pods can lower the
// load, so the rejection is plain Unschedulable.
func (p *Plugin) Filter(ctx context.Context, state fwk.CycleState, _ *v1.Pod, ni fwk.NodeInfo) *fwk.Status {
	loads, err := cycleLoads(state)
	if err != nil {
		return fwk.AsStatus(err)
	}
	l, fresh := loads[ni.Node().Name]
	if reason := policy.LoadRejection(p.policy, ni.Node().Name, l, fresh); reason != "" {
		if !fresh {
			p.filtered.Do(func() {
				klog.FromContext(ctx).Info("Nodes without a fresh load report are filtered out (missingLoad: Filter; logged once)", "node", ni.Node().Name)
			})
		}
		return fwk.NewStatus(fwk.Unschedulable, reason)
	}
	return nil
}

// cycleLoads reads PreFilter's loads.
func cycleLoads(state fwk.CycleState) (map[string]topology.Load, error) {
	data, err := state.Read(filterStateKey)
	if err != nil {
		return nil, fmt.Errorf("reading %s state: %w", Name, err)
	}
	s, ok := data.(*filterState)
	if !ok {
		return nil, fmt.Errorf("%s: state of type %T", filterStateKey, data)
	}
	return s.loads, nil
}

// preScoreState is the cycle's loads and the workload's pods per node, the
// same for every node.
type preScoreState struct {
	loads    map[string]topology.Load
	replicas map[string]int
}

func (s *preScoreState) Clone() fwk.StateData { return s }

// PreScore takes the workload's pods per node from the index once (Score
// is then a lookup per node), and counts, once per pod, cycles in which some
// nodes have no fresh load report (by count, without a lookup per node).
func (p *Plugin) PreScore(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) *fwk.Status {
	loads, err := cycleLoads(state)
	if err != nil {
		return fwk.AsStatus(err)
	}
	st := &preScoreState{loads: loads}
	if p.index != nil {
		st.replicas = p.index.NodeCounts(policy.WorkloadOf(pod))
	}
	state.Write(stateKey, st)
	if missing := len(nodes) - len(loads); missing > 0 {
		p.metrics.MissingData.WithLabelValues(Name, "load").Inc()
		p.warned.Do(func() {
			klog.FromContext(ctx).Info("Nodes without a fresh load report get a neutral NodeLoad load score (logged once)", "nodes", missing)
		})
	}
	return nil
}

// Score is 0..100 from policy.NodeScore: the load score (neutral without a
// fresh report) and the pod-count score of the workload's pods on the node.
func (p *Plugin) Score(_ context.Context, state fwk.CycleState, _ *v1.Pod, ni fwk.NodeInfo) (int64, *fwk.Status) {
	st, err := readPreScore(state)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	name := ni.Node().Name
	l, fresh := st.loads[name]
	return policy.NodeLoadScore(p.policy, l, fresh, st.replicas[name], framework.MaxNodeScore), nil
}

// readPreScore reads PreScore's state.
func readPreScore(state fwk.CycleState) (*preScoreState, error) {
	data, err := state.Read(stateKey)
	if err != nil {
		return nil, err
	}
	s, ok := data.(*preScoreState)
	if !ok {
		return nil, fmt.Errorf("%s: state of type %T", stateKey, data)
	}
	return s, nil
}

// ScoreExtensions returns nil: scores are already in 0..MaxNodeScore.
func (p *Plugin) ScoreExtensions() framework.ScoreExtensions { return nil }

// Reserve counts the pod on its node at once, so that the next replica of
// its workload sees it before the binding reaches the informer, as the
// scheduler's NodeInfo does.
func (p *Plugin) Reserve(_ context.Context, _ fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	if p.index != nil {
		p.index.Assume(pod, nodeName)
	}
	return nil
}

// Unreserve forgets a pod whose scheduling failed after Reserve.
func (p *Plugin) Unreserve(_ context.Context, _ fwk.CycleState, pod *v1.Pod, _ string) {
	if p.index != nil {
		p.index.Forget(pod)
	}
}
