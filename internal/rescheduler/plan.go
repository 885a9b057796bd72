package rescheduler

import (
	"context"
	"fmt"
	"math"

	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/policy"
)

// move is one eviction and where the scheduler is expected to put the
// replacement.
type move struct {
	From, To int
	// Before, Planned and After are the workload's weighted mean RTT in ms as
	// it runs, as the planner would have it, and after this move.
	Before, Planned, After float64
	// Plan is the planner's placement.
	Plan placement.Placement
}

// siteLimits say which sites a workload's replacement may land on and which
// it may lose a pod from.
type siteLimits struct {
	// Usable[j] is true when site j has a node the scheduler can use and the
	// workload's delay constraints allow it.
	Usable []bool
	// MinKeep is the fewest pods a site with traffic keeps.
	MinKeep int
	// MinOccupied is the fewest pods a site that runs one keeps.
	MinOccupied int
}

// keep is the fewest pods each site keeps of a workload running as current:
// MinKeep at a site with traffic, MinOccupied at a site that runs one, never
// more than the site runs.
func (l siteLimits) keep(p *placement.Problem, current placement.Placement) []int {
	out := make([]int, len(current))
	for s, n := range current {
		k := 0
		if p.Traffic[s] > 0 {
			k = l.MinKeep
		}
		if n > 0 {
			k = max(k, l.MinOccupied)
		}
		out[s] = min(k, n)
	}
	return out
}

// nextMove plans the workload (prob.Replicas pods, running as current) and
// returns the single eviction that brings it closest to the plan, judged by
// where the scheduler will put the replacement: the site TrafficLatency
// scores best once the evicted pod is gone, the same marginal gain the
// planner deals replicas by. A move is only returned when that replacement
// strictly lowers the weighted RTT, so under unchanged data every move makes
// progress and evictions cannot cycle. ok is false, with why, otherwise. err
// is not nil when planning failed, and then m holds only Before: when ctx
// ends, the planner stops within milliseconds and err wraps ctx.Err().
func nextMove(ctx context.Context, prob *placement.Problem, current placement.Placement, lim siteLimits) (m move, why string, ok bool, err error) {
	p := *policy.Within(prob, lim.Usable)
	if m.Before, err = p.CostContext(ctx, current); err != nil {
		return m, "", false, err
	}
	if room := policy.Room(&p); room >= 0 && room < p.Replicas {
		return m, fmt.Sprintf("the usable sites' limits hold %d of the %d replicas", room, p.Replicas), false, nil
	}
	// The planner keeps what no move may take (within a site's capacity:
	// a site over its limit or no longer usable keeps its pods all the
	// same, but the plan does not count on them).
	keep := lim.keep(&p, current)
	p.Min = make([]int, len(keep))
	for s, k := range keep {
		p.Min[s] = k
		if c := p.Capacity[s]; c != placement.Unlimited {
			p.Min[s] = min(k, c)
		}
	}
	planned, err := placement.Plan(ctx, &p)
	if err != nil {
		return m, "", false, fmt.Errorf("planning: %w", err)
	}
	if m.Planned, err = p.CostContext(ctx, planned); err != nil {
		return m, "", false, err
	}
	m.Plan = planned
	if m.Planned >= m.Before {
		return m, "already as planned", false, nil
	}
	best := math.Inf(1)
	after := append(placement.Placement(nil), current...)
	for s := range current {
		if current[s] <= planned[s] || current[s] <= keep[s] {
			continue
		}
		after[s]--
		t, err := schedulerChoice(ctx, &p, after, lim.Usable)
		if err != nil {
			return m, "", false, err
		}
		if t >= 0 && t != s {
			after[t]++
			c, err := p.CostContext(ctx, after)
			if err != nil {
				return m, "", false, err
			}
			if c < best {
				best, m.From, m.To = c, s, t
			}
			after[t]--
		}
		after[s]++
	}
	if best >= m.Before*(1-1e-9) {
		return m, "no single eviction lowers the RTT", false, nil
	}
	m.After = best
	return m, "", true, nil
}

// schedulerChoice is the site TrafficLatency ranks first for the workload's
// next pod, among the usable sites with room under p's capacities (the
// sites TrafficLatency's Filter passes), or -1 when there is none.
func schedulerChoice(ctx context.Context, p *placement.Problem, current placement.Placement, usable []bool) (int, error) {
	r, err := policy.Rank(ctx, p, current)
	if err != nil {
		return -1, fmt.Errorf("ranking sites: %w", err)
	}
	return r.Best(policy.Open(p, current, usable)), nil
}
