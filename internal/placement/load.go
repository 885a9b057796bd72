package placement

import (
	"fmt"
	"math"

	"github.com/ning-edge/ning/internal/topology"
)

// LoadPolicy filters and scores nodes by their load. Higher usage is worse:
// an idle node always scores above a busy one. It is built from, and
// validated as, NodeLoad's arguments (internal/policy.LoadPolicy).
type LoadPolicy struct {
	// CPUFilter filters out nodes at or above this CPU utilisation (0..1).
	CPUFilter float64 `json:"cpuFilter"`
	// CPUPenaltyFrom starts the penalty zone: at or above it a node's score
	// drops by Penalty.
	CPUPenaltyFrom float64 `json:"cpuPenaltyFrom"`
	// Penalty is subtracted from the score in the penalty zone (0..1).
	Penalty float64 `json:"penalty"`
	// PSI filters out nodes whose pressure (avg10, percent) reaches a threshold;
	// a zero threshold is off.
	PSI topology.PSI `json:"psi"`
}

// Filter reports whether a node with this load may take a pod, and if not, why.
func (lp LoadPolicy) Filter(l topology.Load) (bool, string) {
	if l.CPU >= lp.CPUFilter {
		return false, fmt.Sprintf("CPU utilisation %.0f%% is at or above the %.0f%% limit", l.CPU*100, lp.CPUFilter*100)
	}
	for _, r := range []struct {
		name       string
		got, limit topology.Pressure
	}{{"cpu", l.PSI.CPU, lp.PSI.CPU}, {"memory", l.PSI.Memory, lp.PSI.Memory}, {"io", l.PSI.IO, lp.PSI.IO}} {
		if r.limit.Some > 0 && r.got.Some >= r.limit.Some {
			return false, fmt.Sprintf("%s pressure (some, avg10) %.1f%% is at or above the %.1f%% limit", r.name, r.got.Some, r.limit.Some)
		}
		if r.limit.Full > 0 && r.got.Full >= r.limit.Full {
			return false, fmt.Sprintf("%s pressure (full, avg10) %.1f%% is at or above the %.1f%% limit", r.name, r.got.Full, r.limit.Full)
		}
	}
	return true, ""
}

// Score rates a node's load from 0 (busiest) to 1 (idle): one minus its CPU
// utilisation, minus the penalty in the penalty zone, minus half of its worst
// "some" pressure.
func (lp LoadPolicy) Score(l topology.Load) float64 {
	s := 1 - l.CPU
	if l.CPU >= lp.CPUPenaltyFrom {
		s -= lp.Penalty
	}
	worst := math.Max(l.PSI.CPU.Some, math.Max(l.PSI.Memory.Some, l.PSI.IO.Some))
	s -= 0.5 * worst / 100
	return math.Max(0, math.Min(1, s))
}
