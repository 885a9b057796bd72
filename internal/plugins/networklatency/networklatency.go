// Package networklatency is the NetworkLatency scheduler plugin: it enforces a
// pod's delay constraints (seed 002's label delay_<from>: "<ms>").
package networklatency

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/plugins/pluginargs"
	"github.com/ning-edge/ning/internal/plugins/siteindex"
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
	pods    corelisters.PodLister
	metrics *schedmetrics.Metrics
	handle  framework.Handle
	warned  sync.Once

	mu sync.Mutex
	// open holds the pods whose constraints fail open, until when.
	open map[types.UID]time.Time
}

// failOpenFor is how long a pod's constraints stay relaxed after every node
// was filtered while RTT data was missing.
const failOpenFor = 10 * time.Minute

var (
	_ framework.PreFilterPlugin   = &Plugin{}
	_ framework.FilterPlugin      = &Plugin{}
	_ framework.EnqueueExtensions = &Plugin{}
	_ framework.PostFilterPlugin  = &Plugin{}
)

// Factory returns the plugin's factory, reading RTTs from rtt.
func Factory(rtt placement.RTTLookup, m *schedmetrics.Metrics) frameworkruntime.PluginFactory {
	return func(_ context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
		p := &Plugin{rtt: rtt, metrics: m, handle: h, open: map[types.UID]time.Time{}}
		if err := pluginargs.Decode(Name, obj, &p.args); err != nil {
			return nil, err
		}
		index, err := siteindex.New(h.SharedInformerFactory(), p.args.SiteLabel, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", Name, err)
		}
		p.index = index
		p.pods = h.SharedInformerFactory().Core().V1().Pods().Lister()
		return p, nil
	}
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

type preFilterState struct {
	// verdicts maps each site to the outcome of the pod's constraints there.
	verdicts map[string]placement.Verdict
	// unknownOnly lists the sites rejected only because an RTT is unknown.
	unknownOnly []string
	// knownBreach is true when a measured RTT breaks a constraint somewhere.
	knownBreach bool
}

func (s *preFilterState) Clone() fwk.StateData { return s }

// PreFilter parses the pod's delay labels, finds the site of every <from>, and
// judges each site once, so that Filter is a lookup per node.
func (p *Plugin) PreFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*framework.PreFilterResult, *fwk.Status) {
	cs, err := placement.ParseConstraints(pod.Labels)
	if err != nil {
		p.metrics.RejectedLabels.Inc()
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	if len(cs) == 0 {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	sites := p.index.Sites()
	resolved := make([]placement.Resolved, 0, len(cs))
	for _, c := range cs {
		site, why := p.resolve(c.From, pod.Namespace)
		if why != "" {
			// Resolvable: the node, site or pod may yet appear.
			return nil, fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("%s: %s", c, why))
		}
		resolved = append(resolved, placement.Resolved{Constraint: c, FromSite: site})
	}
	policy := p.args.UnknownRTT
	if p.failOpen(pod.UID) {
		policy = placement.FailOpen
	}
	st := &preFilterState{verdicts: make(map[string]placement.Verdict, len(sites))}
	for _, site := range sites {
		v := placement.CheckSite(resolved, site, p.rtt, policy)
		st.verdicts[site] = v
		switch {
		case !v.OK && v.Unknown:
			st.unknownOnly = append(st.unknownOnly, site)
		case !v.OK:
			st.knownBreach = true
		}
	}
	state.Write(stateKey, st)
	return nil, nil
}

// resolve finds the site of a constraint's <from>: a node of that name, else a
// site of that name, else a pod of that name in the pod's namespace. It returns
// a reason when there is none.
func (p *Plugin) resolve(from, namespace string) (string, string) {
	if site, ok := p.index.SiteOfNode(from); ok {
		return site, ""
	}
	for _, site := range p.index.Sites() {
		if site == from {
			return from, ""
		}
	}
	pod, err := p.pods.Pods(namespace).Get(from)
	if err != nil {
		return "", fmt.Sprintf("no node, site or pod named %s", from)
	}
	if pod.Spec.NodeName == "" {
		return "", fmt.Sprintf("pod %s/%s is not on a node yet", namespace, from)
	}
	site, ok := p.index.SiteOfNode(pod.Spec.NodeName)
	if !ok {
		return "", fmt.Sprintf("pod %s/%s runs on node %s, which is not known", namespace, from, pod.Spec.NodeName)
	}
	return site, ""
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
	site := p.siteOf(ni.Node())
	v, known := st.verdicts[site]
	if !known {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("site %s was not judged in PreFilter", site))
	}
	if !v.OK {
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

func (p *Plugin) failOpen(uid types.UID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	until, ok := p.open[uid]
	if ok && time.Now().After(until) {
		delete(p.open, uid)
		return false
	}
	return ok
}

// PostFilter runs when no node fits the pod. If the delay constraints rejected
// sites only because RTTs are unknown (no measured RTT breaks them anywhere),
// it is missing data that leaves the pod pending: the plugin then fails open
// for this pod (for failOpenFor), says so in a log line, a metric and an Event,
// and sends the pod straight back to the queue. When a measured RTT breaks a
// constraint, an unmeasured site is no safer a guess, and the pod waits.
func (p *Plugin) PostFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ framework.NodeToStatusReader) (*framework.PostFilterResult, *fwk.Status) {
	data, err := state.Read(stateKey)
	if err != nil {
		return nil, fwk.NewStatus(fwk.Unschedulable) // no delay constraints: nothing to relax
	}
	st, ok := data.(*preFilterState)
	if !ok || len(st.unknownOnly) == 0 || st.knownBreach || p.failOpen(pod.UID) {
		return nil, fwk.NewStatus(fwk.Unschedulable)
	}
	p.mu.Lock()
	now := time.Now()
	for uid, until := range p.open {
		if now.After(until) {
			delete(p.open, uid)
		}
	}
	p.open[pod.UID] = now.Add(failOpenFor)
	p.mu.Unlock()
	sites := append([]string(nil), st.unknownOnly...)
	sort.Strings(sites)
	p.metrics.FailOpen.Inc()
	p.metrics.MissingData.WithLabelValues(Name, "rtt").Inc()
	logger := klog.FromContext(ctx)
	p.warned.Do(func() {
		logger.Info("A pod fits no node while RTTs to some sites are unknown: its delay constraints fail open for those sites rather than leave it pending (logged once; see ning_scheduler_delay_fail_open_total)",
			"pod", klog.KObj(pod), "sites", sites)
	})
	p.handle.EventRecorder().Eventf(pod, nil, v1.EventTypeWarning, "NingDelayFailOpen", "Scheduling",
		"No node fits and the RTT to sites %v is unknown: delay constraints fail open for those sites for %s", sites, failOpenFor)
	p.handle.Activate(logger, map[string]*v1.Pod{pod.Namespace + "/" + pod.Name: pod})
	return nil, fwk.NewStatus(fwk.Unschedulable, "delay constraints will fail open for sites without RTT data")
}
