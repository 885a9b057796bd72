package placement

import (
	"math"
	"sort"
)

// Baselines returns every baseline placement by name. They are what ning is
// measured against, computed by the same cost function as the planner.
func Baselines(p *Problem) map[string]Placement {
	out := make(map[string]Placement, len(baselines))
	for name, f := range baselines {
		out[name] = f(p)
	}
	return out
}

// baselineNames lists the baselines in a fixed order.
var baselineNames = []string{"spread", "busiest-nearest", "seed-extender"}

var baselines = map[string]func(*Problem) Placement{
	"spread":          Spread,
	"busiest-nearest": func(p *Problem) Placement { return BusiestNearest(p, nil) },
	"seed-extender":   SeedExtender,
}

// Spread deals replicas evenly over the sites, blind to traffic and RTT, as
// Kubernetes' default topology spreading does: each replica goes to the site
// with the fewest, ties to the earlier site.
func Spread(p *Problem) Placement {
	x := p.base()
	for x.Total() < p.Replicas {
		best := -1
		for j := range x {
			if p.room(x, j) && (best < 0 || x[j] < x[best]) {
				best = j
			}
		}
		if best < 0 {
			break
		}
		x[best]++
	}
	return x
}

// busiest returns the site with the most traffic (the earliest on a tie).
func (p *Problem) busiest() int {
	best := 0
	for i, w := range p.Traffic {
		if w > p.Traffic[best] {
			best = i
		}
	}
	return best
}

// BusiestNearest is the Ning seed's rescheduler, with its sort corrected to
// ascending RTT: keep one replica on each site that has one now, then fill
// sites to capacity in order of RTT from the busiest site.
func BusiestNearest(p *Problem, current Placement) Placement {
	x := p.base()
	for j, v := range current {
		if v > 0 && x[j] == 0 && x.Total() < p.Replicas && p.room(x, j) {
			x[j] = 1
		}
	}
	b := p.busiest()
	order := make([]int, len(x))
	for j := range order {
		order[j] = j
	}
	sort.SliceStable(order, func(u, v int) bool { return p.dist(b, order[u]) < p.dist(b, order[v]) })
	for _, j := range order {
		for x.Total() < p.Replicas && p.room(x, j) {
			x[j]++
		}
	}
	return x
}

// SeedExtender is seed 004's scheduler extender with its semantics corrected:
// each replica goes to the site with the best score
// (1-usage)*0.3 + (1-latency)*0.7, where latency is the RTT from the busiest
// site over 400 ms and usage the share of the site's capacity already used
// (the seed's pod-count fairness; unlimited sites count against the replica
// total). Sites at 85 % usage or with latency above 50 % are filtered out, and
// 70-85 % usage costs 0.15. When every site is filtered out the replica goes
// to the nearest site with room, where the seed would leave it pending.
func SeedExtender(p *Problem) Placement {
	x := p.base()
	b := p.busiest()
	for x.Total() < p.Replicas {
		best, bestScore, fallback := -1, math.Inf(-1), -1
		for j := range x {
			if !p.room(x, j) {
				continue
			}
			latency := math.Min(p.dist(b, j)/400, 1)
			if fallback < 0 || p.dist(b, j) < p.dist(b, fallback) {
				fallback = j
			}
			limit := p.Capacity[j]
			if limit == Unlimited {
				limit = p.Replicas
			}
			usage := float64(x[j]) / float64(limit)
			if usage >= 0.85 || latency > 0.5 {
				continue
			}
			score := (1-usage)*0.3 + (1-latency)*0.7
			if usage >= 0.70 {
				score -= 0.15
			}
			if score > bestScore+eps {
				best, bestScore = j, score
			}
		}
		if best < 0 {
			best = fallback
		}
		if best < 0 {
			break
		}
		x[best]++
	}
	return x
}
