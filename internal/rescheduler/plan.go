package rescheduler

import (
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
// progress and evictions cannot cycle. ok is false, with why, otherwise.
func nextMove(prob *placement.Problem, current placement.Placement, lim siteLimits) (m move, why string, ok bool) {
	p := *prob
	p.Capacity = make([]int, len(p.Sites))
	for j := range p.Capacity {
		p.Capacity[j] = 0
		if lim.Usable[j] {
			p.Capacity[j] = placement.Unlimited
		}
	}
	m.Before = p.Cost(current)
	planned, err := placement.Plan(&p)
	if err != nil {
		return m, fmt.Sprintf("planning: %v", err), false
	}
	m.Planned, m.Plan = p.Cost(planned), planned
	if m.Planned >= m.Before {
		return m, "already as planned", false
	}
	best := math.Inf(1)
	after := append(placement.Placement(nil), current...)
	for s := range current {
		if current[s] <= planned[s] || (p.Traffic[s] > 0 && current[s] <= lim.MinKeep) {
			continue
		}
		after[s]--
		t := schedulerChoice(&p, after, lim.Usable)
		if t >= 0 && t != s {
			after[t]++
			if c := p.Cost(after); c < best {
				best, m.From, m.To = c, s, t
			}
			after[t]--
		}
		after[s]++
	}
	if best >= m.Before*(1-1e-9) {
		return m, "no single eviction lowers the RTT", false
	}
	m.After = best
	return m, "", true
}

// schedulerChoice is the site TrafficLatency ranks first for the workload's
// next pod, among usable sites, or -1 when none is usable.
func schedulerChoice(p *placement.Problem, current placement.Placement, usable []bool) int {
	return policy.Rank(p, current).Best(usable)
}
