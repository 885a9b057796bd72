// Package defaultplugins runs kube-scheduler's own default plugins, the ones
// ning's scheduler profile keeps, with their default arguments and weights,
// in a scheduling framework over a snapshot of the cluster: ning explain
// scores nodes with them, and the rescheduler checks with their filters that
// a move's target site has a node for the replacement before it evicts.
package defaultplugins

import (
	"context"
	"fmt"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/latest"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/names"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/queuesort"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	schedulermetrics "k8s.io/kubernetes/pkg/scheduler/metrics"
)

// Scorers are kube-scheduler's default score plugins that ning's profile
// keeps (it turns PodTopologySpread's score off) whose scores can be
// computed from the cluster's nodes and pods alone.
var Scorers = []string{names.TaintToleration, names.NodeAffinity, names.NodeResourcesFit,
	names.InterPodAffinity, names.NodeResourcesBalancedAllocation, names.ImageLocality}

// Filters are kube-scheduler's default filter plugins, all kept by ning's
// profile, whose verdict on a node depends on that node and the pods bound
// to it alone. Not among them: NodeName (a replacement names no node), the
// volume plugins (they read claims and volumes), PodTopologySpread and
// InterPodAffinity (they count pods across the cluster, which a replacement
// changes by leaving) and DynamicResources.
var Filters = []string{names.NodeUnschedulable, names.TaintToleration, names.NodeAffinity,
	names.NodePorts, names.NodeResourcesFit}

// Framework is some of kube-scheduler's default plugins in a scheduling
// framework over one snapshot of the cluster.
type Framework struct {
	f       framework.Framework
	snap    *cache.Snapshot
	weights map[string]int32
}

// New builds a framework of the named default plugins (each at every
// extension point it implements, with its default weight) over a snapshot
// of nodes and of the pods bound to them, not finished, but the one whose
// UID is except (the pod judged, whose own place is in question; "" for
// none). client, when not nil, gives the plugins an informer factory; it is
// never started: the plugins read its listers only for features these uses
// do not need (namespace selectors see no namespace). The filter plugins need
// no client.
func New(ctx context.Context, client kubernetes.Interface, enabled []string, nodes []*v1.Node, pods []*v1.Pod, except types.UID) (*Framework, error) {
	schedulermetrics.Register() // the framework counts into them; once per process
	def, err := latest.Default()
	if err != nil {
		return nil, fmt.Errorf("kube-scheduler's default configuration: %w", err)
	}
	want := make(map[string]bool, len(enabled))
	for _, name := range enabled {
		want[name] = true
	}
	prof := def.Profiles[0]
	weights := map[string]int32{}
	multi := []config.Plugin{{Name: queuesort.Name}, {Name: defaultbinder.Name}}
	for _, p := range prof.Plugins.MultiPoint.Enabled {
		if want[p.Name] {
			delete(want, p.Name)
			weights[p.Name] = p.Weight
			multi = append(multi, p)
		}
	}
	if len(want) > 0 {
		var missing []string
		for name := range want {
			missing = append(missing, name)
		}
		sort.Strings(missing)
		return nil, fmt.Errorf("not among kube-scheduler's default plugins: %s", strings.Join(missing, ", "))
	}
	prof.Plugins = &config.Plugins{MultiPoint: config.PluginSet{Enabled: multi}}
	var bound []*v1.Pod
	for _, p := range pods {
		if p.Spec.NodeName != "" && (except == "" || p.UID != except) && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
			bound = append(bound, p)
		}
	}
	snap := cache.NewSnapshot(bound, nodes)
	opts := []frameworkruntime.Option{frameworkruntime.WithSnapshotSharedLister(snap)}
	if client != nil {
		opts = append(opts, frameworkruntime.WithInformerFactory(informers.NewSharedInformerFactory(client, 0)),
			frameworkruntime.WithClientSet(client))
	}
	f, err := frameworkruntime.NewFramework(ctx, plugins.NewInTreeRegistry(), &prof, opts...)
	if err != nil {
		return nil, fmt.Errorf("kube-scheduler's default plugins %s: %w", strings.Join(enabled, ", "), err)
	}
	return &Framework{f: f, snap: snap, weights: weights}, nil
}

// Score is one default plugin's score of a node, normalised as the
// framework weighs it (0 to 100), and the plugin's weight.
type Score struct {
	Plugin string
	Score  int64
	Weight int32
}

// Scores runs the framework's score plugins (PreScore first, as the
// scheduler does) for pod on the candidate nodes, and returns each node's
// scores by plugin name; a plugin of weight 0 is left out.
func (f *Framework) Scores(ctx context.Context, pod *v1.Pod, candidates []string) (map[string][]Score, error) {
	infos, err := f.infos(candidates)
	if err != nil || len(infos) == 0 {
		return nil, err
	}
	state := framework.NewCycleState()
	if st := f.f.RunPreScorePlugins(ctx, state, pod, infos); !st.IsSuccess() {
		return nil, fmt.Errorf("default plugins' PreScore: %w", st.AsError())
	}
	scores, st := f.f.RunScorePlugins(ctx, state, pod, infos)
	if !st.IsSuccess() {
		return nil, fmt.Errorf("default plugins' Score: %w", st.AsError())
	}
	out := make(map[string][]Score, len(scores))
	for _, ns := range scores {
		for _, s := range ns.Scores {
			w := f.weights[s.Name]
			if w == 0 {
				continue
			}
			out[ns.Name] = append(out[ns.Name], Score{Plugin: s.Name, Score: s.Score / int64(w), Weight: w})
		}
		sort.Slice(out[ns.Name], func(i, j int) bool { return out[ns.Name][i].Plugin < out[ns.Name][j].Plugin })
	}
	return out, nil
}

// Fit runs the framework's filter plugins (PreFilter first, as the scheduler
// does) for pod on the candidate nodes, in order, and returns the first node
// that passes them, or "" and why each candidate failed ("node: reason; ...").
// An error is a plugin that failed to judge, not a node that does not fit.
func (f *Framework) Fit(ctx context.Context, pod *v1.Pod, candidates []string) (node, why string, err error) {
	infos, err := f.infos(candidates)
	if err != nil || len(infos) == 0 {
		return "", "no candidate node", err
	}
	state := framework.NewCycleState()
	pre, st, _ := f.f.RunPreFilterPlugins(ctx, state, pod)
	if st.Code() == fwk.Error {
		return "", "", fmt.Errorf("default plugins' PreFilter: %w", st.AsError())
	}
	if !st.IsSuccess() {
		return "", fmt.Sprintf("%s: %s", st.Plugin(), strings.Join(st.Reasons(), ", ")), nil
	}
	var whys []string
	for _, ni := range infos {
		name := ni.Node().Name
		if !pre.AllNodes() && !pre.NodeNames.Has(name) {
			whys = append(whys, name+": not among the nodes PreFilter left")
			continue
		}
		st := f.f.RunFilterPlugins(ctx, state, pod, ni)
		if st.IsSuccess() {
			return name, "", nil
		}
		if st.Code() == fwk.Error {
			return "", "", fmt.Errorf("default plugins' Filter on node %s: %w", name, st.AsError())
		}
		whys = append(whys, fmt.Sprintf("%s: %s %s", name, st.Plugin(), strings.Join(st.Reasons(), ", ")))
	}
	return "", strings.Join(whys, "; "), nil
}

func (f *Framework) infos(names []string) ([]fwk.NodeInfo, error) {
	infos := make([]fwk.NodeInfo, 0, len(names))
	for _, name := range names {
		ni, err := f.snap.Get(name)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", name, err)
		}
		infos = append(infos, ni)
	}
	return infos, nil
}
