// Package networklatency is the NetworkLatency scheduler plugin: it enforces a
// pod's delay constraints (seed 002's label delay_<from>: "<ms>").
package networklatency

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
	"k8s.io/utils/clock"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/plugins/pluginargs"
	"github.com/ning-edge/ning/internal/plugins/siteindex"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/schedmetrics"
	"github.com/ning-edge/ning/internal/topology"
)

// Name is the plugin's name in a KubeSchedulerConfiguration.
const Name = "NetworkLatency"

const stateKey fwk.StateKey = "PreFilter" + Name

// Plugin filters out nodes whose site breaks one of the pod's delay constraints.
type Plugin struct {
	args    configv1alpha1.NetworkLatencyArgs
	rtt     placement.RTTLookup
	index   *siteindex.Index
	locate  policy.Locator
	metrics *schedmetrics.Metrics
	handle  framework.Handle
	clock   clock.PassiveClock
	warned  sync.Once
	// layers keeps the delay layers the PreFilter judges by.
	layers *policy.LayerCache

	// open holds the pods whose constraints fail open, until when.
	open policy.FailOpenLatch
}

var (
	_ framework.PreFilterPlugin   = &Plugin{}
	_ framework.FilterPlugin      = &Plugin{}
	_ framework.EnqueueExtensions = &Plugin{}
	_ framework.PostFilterPlugin  = &Plugin{}
)

// Factory returns the plugin's factory, reading RTTs from rtt.
func Factory(rtt placement.RTTLookup, m *schedmetrics.Metrics) frameworkruntime.PluginFactory {
	return func(_ context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
		p := &Plugin{rtt: rtt, metrics: m, handle: h, clock: clock.RealClock{}}
		if err := pluginargs.Decode(Name, obj, &p.args); err != nil {
			return nil, err
		}
		index, err := siteindex.New(h.SharedInformerFactory(), p.args.SiteLabel, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", Name, err)
		}
		p.index = index
		p.layers = policy.NewLayerCache(p.args.DelayLayersMs, *p.args.DelayLayerToleranceMs)
		p.locate = index.Locator(h.SharedInformerFactory().Core().V1().Pods().Lister())
		return p, nil
	}
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

type preFilterState struct {
	*policy.LayeredJudgement
}

func (s *preFilterState) Clone() fwk.StateData { return s }

// PreFilter parses the pod's delay labels, finds the site of every <from>, and
// takes each constraint's feasible set from the delay layer for its delay
// (placement.Layers, kept by policy.LayerCache: a layer is added for a delay
// no pod asked for before), so that Filter is a lookup per node and the cost
// per pod does not grow with the number of sites.
func (p *Plugin) PreFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*framework.PreFilterResult, *fwk.Status) {
	cs, err := placement.ParseConstraints(pod.Labels)
	if err != nil {
		p.metrics.RejectedLabels.Inc()
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	if len(cs) == 0 {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	resolved, err := policy.Resolve(cs, pod.Namespace, p.locate)
	if err != nil {
		// Resolvable: the node, site or pod may yet appear.
		return nil, fwk.NewStatus(fwk.Unschedulable, err.Error())
	}
	unknownRTT := p.open.Policy(pod.UID, policy.UnknownRTT(p.args.UnknownRTT), p.clock.Now())
	layers := p.layers.Layers(p.clock.Now(), p.index.Sites, p.rtt, policy.Delays(resolved))
	state.Write(stateKey, &preFilterState{policy.JudgeLayered(resolved, layers, p.rtt, unknownRTT)})
	return nil, nil
}

func (p *Plugin) siteOf(n *v1.Node) string {
	return topology.SiteOf(n.Name, n.Labels, p.args.SiteLabel)
}

// PreFilterExtensions returns nil: the verdicts depend on RTTs and on where
// nodes and the <from> pods are, not on the other pods a preemption simulation
// adds or removes.
func (p *Plugin) PreFilterExtensions() framework.PreFilterExtensions { return nil }

// Filter looks up the verdict for the node's site. A breach is
// UnschedulableAndUnresolvable: evicting pods never shortens an RTT, so
// preemption must not try.
func (p *Plugin) Filter(_ context.Context, state fwk.CycleState, _ *v1.Pod, ni fwk.NodeInfo) *fwk.Status {
	data, err := state.Read(stateKey)
	if err != nil {
		return fwk.AsStatus(fmt.Errorf("reading %s state: %w", Name, err))
	}
	st, ok := data.(*preFilterState)
	if !ok {
		return fwk.AsStatus(fmt.Errorf("%s state has type %T", Name, data))
	}
	if v := st.Verdict(p.siteOf(ni.Node())); !v.OK {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, v.Reason)
	}
	return nil
}

// EventsToRegister asks for a retry when nodes appear or change labels, or
// when pods (possibly a <from> pod) are added or bound.
func (p *Plugin) EventsToRegister(context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeLabel}},
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Add | fwk.Update}},
	}, nil
}

// PostFilter runs when no node fits the pod. When policy's fail-open rule
// holds (sites rejected only because RTTs are unknown, none for a measured
// RTT), the plugin fails open for this pod (for policy.FailOpenFor), says so
// in a log line, a metric and an Event, and sends the pod straight back to
// the queue.
func (p *Plugin) PostFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ framework.NodeToStatusReader) (*framework.PostFilterResult, *fwk.Status) {
	data, err := state.Read(stateKey)
	if err != nil {
		return nil, fwk.NewStatus(fwk.Unschedulable) // no delay constraints: nothing to relax
	}
	st, ok := data.(*preFilterState)
	if !ok {
		return nil, fwk.NewStatus(fwk.Unschedulable)
	}
	j := st.Judgement(p.index.Sites())
	if !j.CanFailOpen() || !p.open.Latch(pod.UID, p.clock.Now()) {
		return nil, fwk.NewStatus(fwk.Unschedulable)
	}
	sites := j.UnknownOnly
	p.metrics.FailOpen.Inc()
	p.metrics.MissingData.WithLabelValues(Name, "rtt").Inc()
	logger := klog.FromContext(ctx)
	p.warned.Do(func() {
		logger.Info("A pod fits no node while RTTs to some sites are unknown: its delay constraints fail open for those sites rather than leave it pending (logged once; see ning_scheduler_delay_fail_open_total)",
			"pod", klog.KObj(pod), "sites", sites)
	})
	p.handle.EventRecorder().Eventf(pod, nil, v1.EventTypeWarning, policy.ReasonFailOpen, "Scheduling", "%s", policy.FailOpenMessage(sites))
	p.handle.Activate(logger, map[string]*v1.Pod{pod.Namespace + "/" + pod.Name: pod})
	return nil, fwk.NewStatus(fwk.Unschedulable, "delay constraints will fail open for sites without RTT data")
}
