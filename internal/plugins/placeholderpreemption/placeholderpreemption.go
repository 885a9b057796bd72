// Package placeholderpreemption is kube-scheduler's DefaultPreemption limited
// to placeholder pods: a pending pod may evict a lower-priority pod only when
// that pod is one of the rescheduler's failover placeholders
// (policy.MayPreempt), so that the capacity held for failover is handed to
// the replacement pods at once while no other pod is ever preempted.
package placeholderpreemption

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultpreemption"
	plfeature "k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/ning-edge/ning/internal/policy"
)

// Name is the plugin's name in a scheduler profile.
const Name = "PlaceholderPreemption"

// Plugin is DefaultPreemption whose victims are only placeholder pods.
type Plugin struct {
	*defaultpreemption.DefaultPreemption
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

// New builds the plugin. It takes no arguments: DefaultPreemption's
// defaults (candidates from 10 % of the nodes, at least 100) hold.
func New(ctx context.Context, obj runtime.Object, fh framework.Handle) (framework.Plugin, error) {
	if obj != nil {
		if u, ok := obj.(*runtime.Unknown); !ok || (len(u.Raw) > 0 && string(u.Raw) != "{}" && string(u.Raw) != "null") {
			return nil, fmt.Errorf("%s takes no arguments", Name)
		}
	}
	args := &config.DefaultPreemptionArgs{MinCandidateNodesPercentage: 10, MinCandidateNodesAbsolute: 100}
	fts := plfeature.NewSchedulerFeaturesFromGates(utilfeature.DefaultFeatureGate)
	dp, err := defaultpreemption.New(ctx, args, fh, fts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	dp.IsEligiblePod = Eligible
	return &Plugin{DefaultPreemption: dp}, nil
}

// Eligible is the hook DefaultPreemption asks of each lower-priority
// victim: only a placeholder may be evicted.
func Eligible(_ fwk.NodeInfo, victim fwk.PodInfo, _ *v1.Pod) bool {
	return policy.MayPreempt(victim.GetPod())
}

// Ensure New has the factory signature.
var _ frameworkruntime.PluginFactory = New
