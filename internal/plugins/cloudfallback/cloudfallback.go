// Package cloudfallback is the CloudFallback scheduler plugin (seed 002): nodes
// labelled as cloud workers are used only when no edge node passes the filters.
//
// It scores edge nodes MaxNodeScore and cloud nodes 0 and is meant to carry a
// weight larger than every other score plugin's combined range (the example
// configuration uses 1000), so any feasible edge node outranks every cloud
// node, while a pod that fits nowhere at the edge still runs in the cloud
// rather than waiting.
package cloudfallback

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/plugins/pluginargs"
	"github.com/ning-edge/ning/internal/policy"
)

// Name is the plugin's name in a KubeSchedulerConfiguration.
const Name = "CloudFallback"

// Plugin ranks edge nodes above cloud nodes.
type Plugin struct {
	args configv1alpha1.CloudFallbackArgs
}

var (
	_ framework.PreScorePlugin = &Plugin{}
	_ framework.ScorePlugin    = &Plugin{}
)

// New builds the plugin from its arguments.
func New(_ context.Context, obj runtime.Object, _ framework.Handle) (framework.Plugin, error) {
	p := &Plugin{}
	if err := pluginargs.Decode(Name, obj, &p.args); err != nil {
		return nil, err
	}
	return p, nil
}

// Ensure New has the factory signature.
var _ frameworkruntime.PluginFactory = New

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

// PreScore skips Score when the nodes left after the filters are all edge
// nodes or all cloud nodes: a score alike on every node changes no choice,
// and a Score call per node costs the scheduler a per-node pass.
func (p *Plugin) PreScore(_ context.Context, _ fwk.CycleState, _ *v1.Pod, nodes []fwk.NodeInfo) *fwk.Status {
	if len(nodes) == 0 {
		return fwk.NewStatus(fwk.Skip)
	}
	first := policy.IsCloud(nodes[0].Node().Labels, p.args)
	for _, ni := range nodes[1:] {
		if policy.IsCloud(ni.Node().Labels, p.args) != first {
			return nil
		}
	}
	return fwk.NewStatus(fwk.Skip)
}

// Score is 0 for a cloud node and MaxNodeScore for an edge node.
func (p *Plugin) Score(_ context.Context, _ fwk.CycleState, _ *v1.Pod, ni fwk.NodeInfo) (int64, *fwk.Status) {
	return policy.CloudScore(ni.Node().Labels, p.args, framework.MaxNodeScore), nil
}

// ScoreExtensions returns nil: scores are already in 0..MaxNodeScore.
func (p *Plugin) ScoreExtensions() framework.ScoreExtensions { return nil }
