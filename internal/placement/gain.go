package placement

import (
	"context"
	"fmt"
	"math"
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
// transport and then tries one more replica at each site: where that adds
// capacity at that site alone, as a re-solve from the transport (see flow),
// skipped where a Lagrangian bound settles the gain; where the replicas are
// overloaded, so that one more shrinks every open site's capacity, on the
// open sites and one trial column alone, each site's trial starting from
// the last one's optimum (see columns): per trial, a shortest path over the
// open sites, O(open sites^2), for each site with traffic whose routing
// changes, some tens at 500 sites. It stops soon after ctx ends, returning
// ctx.Err() wrapped.
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
// transport for current is solved once, and one more replica at each site is
// a trial on it, skipped where the Lagrangian bound settles the gain. When
// the replicas are overloaded, every open site's capacity shrinks with the
// new scale, and overloadedGains takes over.
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
	if next != scale {
		// The replicas are overloaded: one more shrinks every open site's
		// capacity, so each trial changes them all (see columns).
		p.overloadedGains(h, current, scale, next, gain)
		return
	}
	fl := newFlow(h, p, p.replicaCaps(current))
	base := fl.value() / w
	var items []knapItem
	movable := fl.movable()
	for j := range gain {
		if h.stopped() {
			return
		}
		// More capacity never costs more, and the Lagrangian bound
		// (flow.knapsack) says by how much it can lower the cost at most:
		// when by nothing, the gain is 0 without a trial.
		items = fl.knapsack(j, items)
		if h.spend(len(fl.src)) {
			return
		}
		c, c1 := p.capOf(current[j], scale), p.capOf(current[j]+1, scale)
		d := knapValue(items, c1) - knapValue(items, c)
		if d >= -fl.tol*eps {
			gain[j] = 0
			continue
		}
		// A site without flow whose knapsack is a flow: the bound is
		// the gain.
		if fl.absorbed[j] <= fl.tol && knapExact(items, c1, movable, fl.tol) {
			gain[j] = -d / w
			continue
		}
		fl.mark()
		fl.setCap(j, p.capOf(current[j]+1, scale))
		fl.solve(h)
		gain[j] = base - fl.value()/w
		fl.rollback()
	}
}

// overloadedGains fills gain when one more replica changes the capacity
// scale (from scale to next): the transport for current is solved on the
// open sites, their capacities then set at next, and the new replica is a
// trial column of capacity capOf(1, next) whose costs are each site's in
// turn (at an open site, the column is a second copy of it). The trials go
// from site to nearby site (trialOrder), each starting from the last one's
// optimum.
func (p *Problem) overloadedGains(h *halt, current Placement, scale, next float64, gain []float64) {
	w := p.TotalTraffic()
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
	for _, j := range p.trialOrder(h) {
		if h.spend(len(cs.src)) {
			return
		}
		for i, s := range cs.src {
			cost[i] = p.dist(s, j)
		}
		cs.trial(cost)
		cs.solve(h)
		gain[j] = base - cs.value()/w
		if cs.broken {
			cs, _ = start()
		}
	}
}

// trialOrder is every site once, each next one the nearest (by the RTT from
// the last) of those not yet visited.
func (p *Problem) trialOrder(h *halt) []int {
	n := len(p.Sites)
	left := make([]int, n)
	for j := range left {
		left[j] = j
	}
	order := make([]int, 0, n)
	cur := 0
	left[0] = left[n-1]
	left = left[:n-1]
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
