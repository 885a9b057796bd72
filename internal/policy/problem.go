package policy

import (
	"context"
	"fmt"
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
	byShare := rankedByShare(g)
	raw := make([]int64, len(current))
	for j := range raw {
		raw[j] = primary(g, byShare, j)*tieSteps + fewer(current, j)
	}
	return raw
}

// rankedByShare reports whether sites are ranked by the traffic a replica
// would serve: when no site lowers the RTT.
func rankedByShare(g placement.Gains) bool {
	for _, v := range g.Gain {
		if v > 1e-9 {
			return false
		}
	}
	return true
}

// primary is site j's first ranking key: the RTT gain in microseconds, or
// with byShare the traffic per replica in milli-requests/s.
func primary(g placement.Gains, byShare bool, j int) int64 {
	v := g.Gain[j]
	if byShare {
		v = g.Share[j]
	}
	return int64(math.Round(math.Min(v*1000, 1e12)))
}

// fewer is the tie-break key: higher for a site with fewer replicas now.
func fewer(current placement.Placement, j int) int64 {
	return int64(tieSteps - 1 - min(current[j], tieSteps-1))
}

// WhyBehind says, for a person, why site b ranks below site a for the
// workload's next replica, by the keys RawScores orders them by: the RTT
// gain, or the traffic a replica would serve when no site lowers the RTT,
// then fewer replicas now. When they tie on every key it says so: the other
// score plugins or the node order then decide.
func (r Ranking) WhyBehind(p *placement.Problem, current placement.Placement, a, b int) string {
	g := r.Gains
	byShare := rankedByShare(g)
	pa, pb := primary(g, byShare, a), primary(g, byShare, b)
	sa, sb := p.Sites[a], p.Sites[b]
	switch {
	case pa != pb && !byShare:
		// Told by the weighted mean RTT after each, never by the gains:
		// from no replica, or traffic at an unknown RTT, they hold the
		// unknown-RTT penalty.
		ma, ka := MeanRTT(p, plusOne(current, a))
		mb, kb := MeanRTT(p, plusOne(current, b))
		switch {
		case ka && kb:
			return fmt.Sprintf("with one more replica in %s the traffic-weighted mean RTT would be %.2f ms, with one in %s %.2f ms", sb, mb, sa, ma)
		case ka:
			return fmt.Sprintf("one more replica in %s leaves traffic at an unknown RTT (%s), one in %s does not", sb, unknownFrom(p, plusOne(current, b)), sa)
		}
		return fmt.Sprintf("one more replica in %s brings less traffic to a replica at a known RTT than one in %s", sb, sa)
	case pa != pb:
		return fmt.Sprintf("no site lowers the traffic-weighted mean RTT; a replica in %s would serve %s req/s, in %s %s req/s",
			sb, formatRate(g.Share[b]), sa, formatRate(g.Share[a]))
	case fewer(current, a) != fewer(current, b):
		return fmt.Sprintf("the same gain as %s, but %s holds %d replicas of the workload and %s %d", sa, sb, current[b], sa, current[a])
	}
	return fmt.Sprintf("it ties with %s on TrafficLatency (same gain, same replicas): the other score plugins and the node order decide", sa)
}

// plusOne is x with one more replica at site j.
func plusOne(x placement.Placement, j int) placement.Placement {
	y := append(placement.Placement(nil), x...)
	y[j]++
	return y
}

// Normalise maps raw scores linearly onto 0..maxScore, the highest to
// maxScore and the lowest to 0 (all 0 when they are equal): TrafficLatency's
// NormalizeScore over the nodes being scored, so that a site no candidate
// node is in does not flatten the scale.
func Normalise(raw []int64, maxScore int64) []int64 {
	out := make([]int64, len(raw))
	if len(raw) == 0 {
		return out
	}
	lo, hi := raw[0], raw[0]
	for _, v := range raw {
		lo, hi = min(lo, v), max(hi, v)
	}
	if hi == lo {
		return out
	}
	for i, v := range raw {
		out[i] = int64(float64(v-lo) / float64(hi-lo) * float64(maxScore))
	}
	return out
}

// Leaders returns the best-ranked candidate site by raw and the best
// candidate other than chosen, the runner-up; -1 where there is none.
func Leaders(raw []int64, candidate []bool, chosen int) (best, runner int) {
	best, runner = -1, -1
	for j, v := range raw {
		if !candidate[j] {
			continue
		}
		if best < 0 || v > raw[best] {
			best = j
		}
		if j != chosen && (runner < 0 || v > raw[runner]) {
			runner = j
		}
	}
	return best, runner
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
