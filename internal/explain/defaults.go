package explain

import (
	"context"
	"fmt"
	"sort"

	v1 "k8s.io/api/core/v1"
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

// defaultScorers are kube-scheduler's default score plugins that ning's
// profile keeps (it turns PodTopologySpread's score off), whose scores
// explain can compute from the cluster's nodes and pods alone.
var defaultScorers = map[string]bool{
	names.TaintToleration: true, names.NodeAffinity: true, names.NodeResourcesFit: true,
	names.InterPodAffinity: true, names.NodeResourcesBalancedAllocation: true, names.ImageLocality: true,
}

// defaultScores runs those plugins themselves, with kube-scheduler's default
// arguments and weights, in a scheduling framework over a snapshot of the
// cluster (every bound pod but the one explained), and returns each
// candidate node's scores, normalised as the framework weighs them.
func defaultScores(ctx context.Context, client kubernetes.Interface, pod *v1.Pod, nodes []*v1.Node, pods []*v1.Pod, candidates []string) (map[string][]Score, error) {
	schedulermetrics.Register() // the framework counts into them; once per process
	def, err := latest.Default()
	if err != nil {
		return nil, fmt.Errorf("kube-scheduler's default configuration: %w", err)
	}
	prof := def.Profiles[0]
	// MultiPoint: each plugin at the extension points it implements.
	weights := map[string]int32{}
	multi := []config.Plugin{{Name: queuesort.Name}, {Name: defaultbinder.Name}}
	for _, p := range prof.Plugins.MultiPoint.Enabled {
		if defaultScorers[p.Name] && p.Weight > 0 {
			weights[p.Name] = p.Weight
			multi = append(multi, p)
		}
	}
	prof.Plugins = &config.Plugins{MultiPoint: config.PluginSet{Enabled: multi}}
	var bound []*v1.Pod
	for _, p := range pods {
		if p.Spec.NodeName != "" && p.UID != pod.UID && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
			bound = append(bound, p)
		}
	}
	snap := cache.NewSnapshot(bound, nodes)
	// The informers are never started: the plugins register listers they
	// read only for features explain does not use (namespace selectors see
	// no namespace).
	f, err := frameworkruntime.NewFramework(ctx, plugins.NewInTreeRegistry(), &prof,
		frameworkruntime.WithSnapshotSharedLister(snap),
		frameworkruntime.WithInformerFactory(informers.NewSharedInformerFactory(client, 0)),
		frameworkruntime.WithClientSet(client))
	if err != nil {
		return nil, fmt.Errorf("kube-scheduler's default score plugins: %w", err)
	}
	var infos []fwk.NodeInfo
	for _, name := range candidates {
		ni, err := snap.Get(name)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", name, err)
		}
		infos = append(infos, ni)
	}
	if len(infos) == 0 {
		return nil, nil
	}
	state := framework.NewCycleState()
	if st := f.RunPreScorePlugins(ctx, state, pod, infos); !st.IsSuccess() {
		return nil, fmt.Errorf("default plugins' PreScore: %w", st.AsError())
	}
	scores, st := f.RunScorePlugins(ctx, state, pod, infos)
	if !st.IsSuccess() {
		return nil, fmt.Errorf("default plugins' Score: %w", st.AsError())
	}
	out := make(map[string][]Score, len(scores))
	for _, ns := range scores {
		for _, s := range ns.Scores {
			w := weights[s.Name]
			if w == 0 {
				continue
			}
			out[ns.Name] = append(out[ns.Name], Score{Plugin: s.Name, Raw: float64(s.Score / int64(w)), Normalised: s.Score / int64(w), Weight: w, Default: true})
		}
		sort.Slice(out[ns.Name], func(i, j int) bool { return out[ns.Name][i].Plugin < out[ns.Name][j].Plugin })
	}
	return out, nil
}
