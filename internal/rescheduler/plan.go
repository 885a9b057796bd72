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
		if current[s] <= planned[s] || (p.Traffic[s] > 0 && current[s] <= lim.MinKeep) {
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
// next pod, among usable sites, or -1 when none is usable.
func schedulerChoice(ctx context.Context, p *placement.Problem, current placement.Placement, usable []bool) (int, error) {
	r, err := policy.Rank(ctx, p, current)
	if err != nil {
		return -1, fmt.Errorf("ranking sites: %w", err)
	}
	return r.Best(usable), nil
}
