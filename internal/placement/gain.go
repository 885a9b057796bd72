package placement

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// Gains says, for each site, how much one more replica there would help a
// workload whose replicas run as in current. Gain is the drop in the
// traffic-weighted mean RTT (ms); Share is the traffic the site would serve per
// replica with one more (the D'Hondt quotient Plan uses to deal replicas that
// do not change the RTT). A scheduler ranks sites by Gain, then by Share, and
// so agrees with Plan.
type Gains struct {
	Gain  []float64
	Share []float64
}

// MarginalGains computes Gains. Without a rate limit it costs
// O(sites x sites-with-traffic) once per workload, after which each node's
// score is a lookup by its site. With a limit it solves one min-cost
// transport on the open sites and then tries one more replica at each site
// as a trial column, each trial starting from the last one's optimum (see
// columns and limitedGains): per trial, O(sites-with-traffic) to set the
// column's costs, and a shortest path over the open sites, O(open sites^2),
// for each site with traffic whose routing changes, some tens at 500 sites.
// Where one more replica adds capacity at its site alone, a Lagrangian bound
// settles most sites in O(sites-with-traffic) each, with no trial. It stops
// soon after ctx ends, returning ctx.Err() wrapped.
func MarginalGains(ctx context.Context, p *Problem, current Placement) (Gains, error) {
	n := len(p.Sites)
	g := Gains{Gain: make([]float64, n), Share: make([]float64, n)}
	w := p.TotalTraffic()
	if w <= 0 {
		return g, nil
	}
	served := p.served(current)
	for j := range g.Share {
		g.Share[j] = served[j] / float64(current[j]+1)
	}
	if p.capacitated() {
		h := newHalt(ctx)
		p.limitedGains(h, current, g.Gain)
		if err := h.err(fmt.Sprintf("marginal gains over %d sites", n)); err != nil {
			return Gains{}, err
		}
		return g, nil
	}
	near := p.nearestAll(current)
	var busy []int // the sites with traffic: often far fewer than all
	for i, wi := range p.Traffic {
		if wi > 0 {
			busy = append(busy, i)
		}
	}
	for j := 0; j < n; j++ {
		total := 0.0
		for _, i := range busy {
			if d := p.dist(i, j); d < near[i] {
				total += p.Traffic[i] * (near[i] - d)
			}
		}
		g.Gain[j] = total / w
	}
	return g, nil
}

// Better reports whether site a should get the workload's next replica before
// site b: the larger Gain, then the larger Share, then the site with fewer
// replicas now, then the earlier site. It is the order Plan deals replicas in.
func (g Gains) Better(x Placement, a, b int) bool {
	if d := g.Gain[a] - g.Gain[b]; math.Abs(d) > eps*math.Max(1, math.Max(math.Abs(g.Gain[a]), math.Abs(g.Gain[b]))) {
		return d > 0
	}
	if d := g.Share[a] - g.Share[b]; math.Abs(d) > eps*math.Max(1, math.Max(g.Share[a], g.Share[b])) {
		return d > 0
	}
	if x[a] != x[b] {
		return x[a] < x[b]
	}
	return a < b
}

// limitedGains fills gain with each site's Gain under a rate limit: the
// transport for current is solved on the open sites, and one more replica
// at a site is a trial column of capacity capOf(1, next) whose costs are
// that site's (at an open site, a second copy of it), solved from the last
// trial's optimum (see columns). When the replicas are overloaded (next is
// not scale), one more shrinks every open site's capacity, so the columns'
// capacities are set at next before the first trial. When they are not, the
// Lagrangian bound of the trial column (marginals) settles most sites
// with no trial.
func (p *Problem) limitedGains(h *halt, current Placement, gain []float64) {
	w := p.TotalTraffic()
	total := current.Total()
	if total == 0 {
		// One replica takes all traffic wherever it goes.
		for j := range gain {
			c := 0.0
			for i, wi := range p.Traffic {
				c += wi * p.dist(i, j)
			}
			gain[j] = UnknownRTTPenaltyMs - c/w
		}
		return
	}
	scale, next := p.capScale(total), p.capScale(total+1)
	var cols []int
	var caps []float64
	for j, v := range current {
		if v > 0 {
			cols = append(cols, j)
			caps = append(caps, p.capOf(v, scale))
		}
	}
	// The transport for current, then the capacities at next.
	start := func() (*columns, float64) {
		cs := newColumns(h, p, cols, caps)
		v := cs.value()
		for c, j := range cols {
			cs.setCap(c, p.capOf(current[j], next))
		}
		cs.openTrial(p.capOf(1, next))
		return cs, v
	}
	cs, v := start()
	base := v / w
	cost := make([]float64, len(cs.src))
	fill := func(j int) {
		for i, s := range cs.src {
			cost[i] = p.dist(s, j)
		}
	}
	var tried []int // the sites that need a trial
	// (The potentials of a flow that could not be completed bound nothing.)
	if next == scale && !cs.broken {
		mc := cs.marginals()
		for j := range gain {
			if h.spend(len(cs.src)) {
				return
			}
			fill(j)
			if d, ok := mc.drop(cost, p.capOf(1, next)); ok {
				gain[j] = d / w
			} else {
				tried = append(tried, j)
			}
		}
	} else {
		tried = make([]int, len(gain))
		for j := range tried {
			tried[j] = j
		}
	}
	for _, j := range p.trialOrder(h, tried) {
		if h.spend(len(cs.src)) {
			return
		}
		fill(j)
		cs.trial(cost)
		cs.solve(h)
		gain[j] = base - cs.value()/w
		if cs.broken {
			cs, _ = start()
		}
	}
}

// trialOrder is every one of sites once, each next one the nearest (by the
// RTT from the last) of those not yet visited.
func (p *Problem) trialOrder(h *halt, sites []int) []int {
	if len(sites) == 0 {
		return nil
	}
	left := slices.Clone(sites)
	order := make([]int, 0, len(left))
	cur := left[0]
	left[0] = left[len(left)-1]
	left = left[:len(left)-1]
	order = append(order, cur)
	for len(left) > 0 {
		if h.spend(len(left)) {
			return order
		}
		best, bd := 0, math.Inf(1)
		for k, j := range left {
			if d := p.dist(cur, j); d < bd {
				best, bd = k, d
			}
		}
		cur = left[best]
		left[best] = left[len(left)-1]
		left = left[:len(left)-1]
		order = append(order, cur)
	}
	return order
}
