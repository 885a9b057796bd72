// Package nodeload is the NodeLoad scheduler plugin: it filters out nodes whose
// CPU utilisation or pressure (PSI) from the latest prober report is over a
// threshold, and prefers idle nodes to busy ones.
package nodeload

import (
	"context"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/plugins/pluginargs"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/schedmetrics"
	"github.com/ning-edge/ning/internal/topology"
)

// Name is the plugin's name in a KubeSchedulerConfiguration.
const Name = "NodeLoad"

// NeutralScore is the score of a node with no fresh load report.
const NeutralScore = int64(float64(framework.MaxNodeScore) * policy.NeutralLoad)

// Loads gives a node's latest load; ok is false when none is fresh.
type Loads interface {
	Load(node string) (topology.Load, bool)
	// FreshLoads counts the nodes with a fresh load report.
	FreshLoads() int
}

// Plugin filters and scores nodes by load.
type Plugin struct {
	policy  placement.LoadPolicy
	loads   Loads
	metrics *schedmetrics.Metrics
	warned  sync.Once
}

var (
	_ framework.FilterPlugin   = &Plugin{}
	_ framework.PreScorePlugin = &Plugin{}
	_ framework.ScorePlugin    = &Plugin{}
)

// Factory returns the plugin's factory, reading loads from loads.
func Factory(loads Loads, m *schedmetrics.Metrics) frameworkruntime.PluginFactory {
	return func(_ context.Context, obj runtime.Object, _ framework.Handle) (framework.Plugin, error) {
		var args configv1alpha1.NodeLoadArgs
		if err := pluginargs.Decode(Name, obj, &args); err != nil {
			return nil, err
		}
		return &Plugin{policy: policy.LoadPolicy(args), loads: loads, metrics: m}, nil
	}
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

// Filter rejects a node over a load threshold. A node without a fresh report
// passes: missing data never filters a node. Load can fall, and evicting
// lower-priority pods can lower it, so the rejection is plain Unschedulable.
func (p *Plugin) Filter(_ context.Context, _ fwk.CycleState, _ *v1.Pod, ni fwk.NodeInfo) *fwk.Status {
	l, fresh := p.loads.Load(ni.Node().Name)
	if reason := policy.LoadRejection(p.policy, ni.Node().Name, l, fresh); reason != "" {
		return fwk.NewStatus(fwk.Unschedulable, reason)
	}
	return nil
}

// PreScore counts, once per pod, cycles in which some nodes have no fresh
// load report (by count, without a lookup per node).
func (p *Plugin) PreScore(ctx context.Context, _ fwk.CycleState, _ *v1.Pod, nodes []fwk.NodeInfo) *fwk.Status {
	if missing := len(nodes) - p.loads.FreshLoads(); missing > 0 {
		p.metrics.MissingData.WithLabelValues(Name, "load").Inc()
		p.warned.Do(func() {
			klog.FromContext(ctx).Info("Nodes without a fresh load report get a neutral NodeLoad score (logged once)", "nodes", missing)
		})
	}
	return nil
}

// Score is 0..100 from the load policy's score; neutral without a report.
func (p *Plugin) Score(_ context.Context, _ fwk.CycleState, _ *v1.Pod, ni fwk.NodeInfo) (int64, *fwk.Status) {
	l, fresh := p.loads.Load(ni.Node().Name)
	return int64(float64(framework.MaxNodeScore) * policy.LoadScore(p.policy, l, fresh)), nil
}

// ScoreExtensions returns nil: scores are already in 0..MaxNodeScore.
func (p *Plugin) ScoreExtensions() framework.ScoreExtensions { return nil }
