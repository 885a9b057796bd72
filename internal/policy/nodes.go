package policy

import (
	"fmt"
	"math"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/topology"
)

// IsCloud reports whether a node with these labels is a cloud node, used only
// when no edge node fits (CloudFallback's rule).
func IsCloud(labels map[string]string, a configv1alpha1.CloudFallbackArgs) bool {
	return labels[a.CloudLabel] == a.CloudValue
}

// NodeLoad is NodeLoad's rules, from its arguments: the load thresholds and
// score, what a node without a fresh load report gets, and the weight of the
// pod-count term. The plugin and the extender both judge nodes by it.
type NodeLoad struct {
	placement.LoadPolicy
	// MissingLoad says whether a node without a fresh report passes with
	// the neutral score or is filtered out.
	MissingLoad configv1alpha1.MissingLoadPolicy
	// PodCountWeight (0..1) is the pod-count term's share of the score.
	PodCountWeight float64
}

// LoadPolicy is the policy NodeLoad's arguments describe; call SetDefaults
// on them first.
func LoadPolicy(a configv1alpha1.NodeLoadArgs) NodeLoad {
	lp := NodeLoad{LoadPolicy: placement.LoadPolicy{PSI: topology.PSI{
		CPU:    topology.Pressure{Some: a.PSI.CPU.Some, Full: a.PSI.CPU.Full},
		Memory: topology.Pressure{Some: a.PSI.Memory.Some, Full: a.PSI.Memory.Full},
		IO:     topology.Pressure{Some: a.PSI.IO.Some, Full: a.PSI.IO.Full},
	}}, MissingLoad: a.MissingLoad}
	if a.CPUFilter != nil {
		lp.CPUFilter = *a.CPUFilter
	}
	if a.CPUPenaltyFrom != nil {
		lp.CPUPenaltyFrom = *a.CPUPenaltyFrom
	}
	if a.Penalty != nil {
		lp.Penalty = *a.Penalty
	}
	if a.PodCountWeight != nil {
		lp.PodCountWeight = *a.PodCountWeight
	}
	return lp
}

// NeutralLoad is the 0..1 load score of a node without a fresh load report
// under MissingLoadNeutral: missing data neither favours nor penalises a
// node.
const NeutralLoad = 0.5

// LoadScore is a node's 0..1 load score (1 idle), NeutralLoad without a
// fresh report (fresh false).
func LoadScore(lp NodeLoad, l topology.Load, fresh bool) float64 {
	if !fresh {
		return NeutralLoad
	}
	return lp.Score(l)
}

// PodCountScore is the 0..1 pod-count score of a node that holds replicas of
// the workload: 1 / (1 + replicas), so the first replica on a node costs the
// most and every further one less.
func PodCountScore(replicas int) float64 {
	return 1 / (1 + float64(max(replicas, 0)))
}

// NodeScore is NodeLoad's 0..1 score of a node: the load score and the
// pod-count score, weighted by PodCountWeight.
func NodeScore(lp NodeLoad, l topology.Load, fresh bool, replicas int) float64 {
	w := lp.PodCountWeight
	return (1-w)*LoadScore(lp, l, fresh) + w*PodCountScore(replicas)
}

// NodeLoadScore is NodeScore on the scheduler's 0..maxScore scale, rounded:
// NodeLoad's Score.
func NodeLoadScore(lp NodeLoad, l topology.Load, fresh bool, replicas int, maxScore int64) int64 {
	return int64(math.Round(float64(maxScore) * NodeScore(lp, l, fresh, replicas)))
}

// CloudScore is CloudFallback's score: 0 for a cloud node, maxScore for an
// edge node.
func CloudScore(labels map[string]string, a configv1alpha1.CloudFallbackArgs, maxScore int64) int64 {
	if IsCloud(labels, a) {
		return 0
	}
	return maxScore
}

// LoadRejection says why a node may not take a pod, or "" when it may: over
// a load threshold, or without a fresh report under MissingLoadFilter. Under
// MissingLoadNeutral a node without a fresh report passes.
func LoadRejection(lp NodeLoad, node string, l topology.Load, fresh bool) string {
	if !fresh {
		if lp.MissingLoad == configv1alpha1.MissingLoadFilter {
			return fmt.Sprintf("node %s: no fresh load report (missingLoad: Filter)", node)
		}
		return ""
	}
	if ok, why := lp.Filter(l); !ok {
		return fmt.Sprintf("node %s: %s", node, why)
	}
	return ""
}

// LoadFilterNeeded reports whether LoadRejection can reject any node, given
// every fresh load by node: under MissingLoadFilter (a node without a report
// is rejected), or when some fresh load is at a threshold. When it is false,
// every node passes and the filter need not run.
func LoadFilterNeeded(lp NodeLoad, fresh map[string]topology.Load) bool {
	if lp.MissingLoad == configv1alpha1.MissingLoadFilter {
		return true
	}
	for _, l := range fresh {
		if ok, _ := lp.Filter(l); !ok {
			return true
		}
	}
	return false
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
