package policy

import (
	"context"
	"math"

	"github.com/ning-edge/ning/internal/placement"
)

// Problem is the placement problem of one workload over sites: the traffic
// entering at each site (none where traffic has no entry), the RTTs (rtt is
// indexed like sites; +Inf is unknown), no capacity limit, and perReplicaRPS.
// Replicas is left 0 for the caller to set.
func Problem(sites []string, rtt [][]float64, traffic map[string]float64, perReplicaRPS float64) *placement.Problem {
	p := &placement.Problem{
		Sites:         sites,
		Traffic:       make([]float64, len(sites)),
		Capacity:      make([]int, len(sites)),
		RTT:           rtt,
		PerReplicaRPS: perReplicaRPS,
	}
	for i, site := range sites {
		p.Traffic[i] = traffic[site]
		p.Capacity[i] = placement.Unlimited
	}
	return p
}

// Current is the placement that counts (replicas per site) describe over
// sites; counts at sites not listed are dropped.
func Current(sites []string, counts map[string]int) placement.Placement {
	x := make(placement.Placement, len(sites))
	for i, site := range sites {
		x[i] = counts[site]
	}
	return x
}

// Ranking ranks sites for a workload's next replica.
type Ranking struct {
	// Gains are each site's marginal gains for one more replica.
	Gains placement.Gains
	// Raw orders sites as the planner fills them: higher is better.
	Raw []int64
}

// tieSteps is the room left in a raw score for the fewer-replicas tie-break.
const tieSteps = 1024

// Rank scores each site for one more replica of the workload running as
// current, by the same marginal gain the planner deals replicas by: the RTT
// gain (in microseconds) or, when no site lowers the RTT, the traffic per
// replica (in milli-requests/s), then fewer replicas now. The scheduler
// plugin, the extender and the rescheduler's prediction all rank with it.
// It stops soon after ctx ends, returning ctx.Err() wrapped.
func Rank(ctx context.Context, p *placement.Problem, current placement.Placement) (Ranking, error) {
	q := *p
	q.Replicas = current.Total() + 1
	g, err := placement.MarginalGains(ctx, &q, current)
	if err != nil {
		return Ranking{}, err
	}
	return Ranking{Gains: g, Raw: RawScores(g, current)}, nil
}

// RawScores turns gains into integers that order sites as Plan fills them
// (see Rank).
func RawScores(g placement.Gains, current placement.Placement) []int64 {
	values, scale := g.Gain, 1000.0
	useShare := true
	for _, v := range g.Gain {
		if v > 1e-9 {
			useShare = false
			break
		}
	}
	if useShare {
		values = g.Share
	}
	raw := make([]int64, len(current))
	for j, v := range values {
		fewer := int64(tieSteps - 1 - min(current[j], tieSteps-1))
		raw[j] = int64(math.Round(math.Min(v*scale, 1e12)))*tieSteps + fewer
	}
	return raw
}

// Best is the best-ranked site among the usable ones (all when usable is
// nil), or -1 when none is usable.
func (r Ranking) Best(usable []bool) int {
	best := -1
	for j, v := range r.Raw {
		if (usable == nil || usable[j]) && (best < 0 || v > r.Raw[best]) {
			best = j
		}
	}
	return best
}
