package policy

import (
	"fmt"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/topology"
)

// IsCloud reports whether a node with these labels is a cloud node, used only
// when no edge node fits (CloudFallback's rule).
func IsCloud(labels map[string]string, a configv1alpha1.CloudFallbackArgs) bool {
	return labels[a.CloudLabel] == a.CloudValue
}

// LoadPolicy is the load policy NodeLoad's arguments describe; call
// SetDefaults on them first.
func LoadPolicy(a configv1alpha1.NodeLoadArgs) placement.LoadPolicy {
	lp := placement.LoadPolicy{PSI: topology.PSI{
		CPU:    topology.Pressure{Some: a.PSI.CPU.Some, Full: a.PSI.CPU.Full},
		Memory: topology.Pressure{Some: a.PSI.Memory.Some, Full: a.PSI.Memory.Full},
		IO:     topology.Pressure{Some: a.PSI.IO.Some, Full: a.PSI.IO.Full},
	}}
	if a.CPUFilter != nil {
		lp.CPUFilter = *a.CPUFilter
	}
	if a.CPUPenaltyFrom != nil {
		lp.CPUPenaltyFrom = *a.CPUPenaltyFrom
	}
	if a.Penalty != nil {
		lp.Penalty = *a.Penalty
	}
	return lp
}

// NeutralLoad is the 0..1 load score of a node without a fresh load report:
// missing data neither favours nor penalises a node.
const NeutralLoad = 0.5

// LoadScore is a node's 0..1 load score (1 idle), NeutralLoad without a
// fresh report (fresh false).
func LoadScore(lp placement.LoadPolicy, l topology.Load, fresh bool) float64 {
	if !fresh {
		return NeutralLoad
	}
	return lp.Score(l)
}

// LoadRejection says why a node is over a load threshold, or "" when it may
// take a pod. A node without a fresh report passes: missing data never
// filters a node.
func LoadRejection(lp placement.LoadPolicy, node string, l topology.Load, fresh bool) string {
	if !fresh {
		return ""
	}
	if ok, why := lp.Filter(l); !ok {
		return fmt.Sprintf("node %s: %s", node, why)
	}
	return ""
}

// Weights are the score weights of ning's profile.
type Weights struct {
	TrafficLatency, NodeLoad, CloudFallback int32
}

// DefaultWeights are the weights of ning's default profile: CloudFallback's
// is larger than every other score plugin's range together, so a cloud node
// is chosen only when no edge node passes the filters.
func DefaultWeights() Weights {
	return Weights{TrafficLatency: 10, NodeLoad: 2, CloudFallback: 1000}
}
