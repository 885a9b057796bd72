package placement

import (
	"context"
	"fmt"
	"math"
)

const eps = 1e-9

// Cost returns the traffic-weighted mean RTT in ms of a placement: the one
// objective that the planner, the exact optimum and every baseline are judged by.
//
// Without a per-replica rate limit each site's traffic goes to the nearest site
// that has a replica. With one, site j serves at most PerReplicaRPS*x[j] and
// traffic is routed at least cost (a min-cost transport, which is "served by the
// nearest replicas with spare capacity" done well); when the replicas together
// cannot serve all traffic, every replica is overloaded in the same proportion.
// An unknown RTT counts as UnknownRTTPenaltyMs. With no traffic the cost is 0.
func (p *Problem) Cost(x Placement) float64 { return p.cost(nil, x) }

// CostContext is Cost that stops soon after ctx ends (a rate-limited cost is
// a min-cost transport, long on a large cluster), returning ctx.Err() wrapped.
func (p *Problem) CostContext(ctx context.Context, x Placement) (float64, error) {
	h := newHalt(ctx)
	c := p.cost(h, x)
	if err := h.err(fmt.Sprintf("cost of a placement over %d sites", len(p.Sites))); err != nil {
		return 0, err
	}
	return c, nil
}

// cost is Cost inside a solve: once h stops, +Inf.
func (p *Problem) cost(h *halt, x Placement) float64 {
	if h.stopped() {
		return math.Inf(1)
	}
	w := p.TotalTraffic()
	if w <= 0 {
		return 0
	}
	if x.Total() == 0 {
		return UnknownRTTPenaltyMs
	}
	if p.capacitated() {
		return p.transportCost(h, x) / w
	}
	total := 0.0
	for i, wi := range p.Traffic {
		if wi > 0 {
			total += wi * p.nearest(x, i)
		}
	}
	return total / w
}

// nearest is the distance from traffic site i to the closest site with a replica.
func (p *Problem) nearest(x Placement, i int) float64 {
	best := math.Inf(1)
	for j, n := range x {
		if n > 0 {
			best = math.Min(best, p.dist(i, j))
		}
	}
	return best
}

// nearestAll returns, per traffic site, the distance to the nearest site with a
// replica; with no replica anywhere it is UnknownRTTPenaltyMs, as in Cost.
// Sites without traffic get UnknownRTTPenaltyMs: callers weigh by traffic.
func (p *Problem) nearestAll(x Placement) []float64 {
	near := make([]float64, len(x))
	placed := x.Total() > 0
	for i := range near {
		near[i] = UnknownRTTPenaltyMs
		if placed && p.Traffic[i] > 0 {
			near[i] = p.nearest(x, i)
		}
	}
	return near
}

// served returns, per site, the traffic for which it is the nearest site with
// a replica (ties split evenly). It drives where surplus replicas go.
func (p *Problem) served(x Placement) []float64 {
	out := make([]float64, len(x))
	for i, wi := range p.Traffic {
		if wi <= 0 {
			continue
		}
		best := p.nearest(x, i)
		var ties []int
		for j, n := range x {
			if n > 0 && p.dist(i, j) <= best+eps {
				ties = append(ties, j)
			}
		}
		for _, j := range ties {
			out[j] += wi / float64(len(ties))
		}
	}
	return out
}

// transportCost is the least total cost (rate x ms) of routing all traffic to
// replicas, each site j absorbing at most PerReplicaRPS*x[j] (scaled up
// uniformly when the replicas cannot absorb it all).
func (p *Problem) transportCost(h *halt, x Placement) float64 {
	return newFlow(h, p, p.replicaCaps(x)).value()
}

// replicaCaps is what each site absorbs with x's replicas: PerReplicaRPS per
// replica, every capacity scaled up alike when together they cannot absorb
// all traffic. Every capacity of one total is capOf's.
func (p *Problem) replicaCaps(x Placement) []float64 {
	caps := make([]float64, len(x))
	scale := p.capScale(x.Total())
	for j, n := range x {
		caps[j] = p.capOf(n, scale)
	}
	return caps
}

// capScale is the factor all capacities are scaled by when total replicas
// serve less than all traffic (1 when they serve it all).
func (p *Problem) capScale(total int) float64 {
	w, room := p.TotalTraffic(), p.PerReplicaRPS*float64(total)
	if room > 0 && room < w {
		return w / room * (1 + 1e-12)
	}
	return 1
}

// capOf is what n replicas absorb under the scale.
func (p *Problem) capOf(n int, scale float64) float64 {
	return p.PerReplicaRPS * float64(n) * scale
}

// transport solves the min-cost transport from traffic sites to sites with the
// given absorbing capacities (scaled up uniformly when together they cannot
// take all traffic). It returns the total cost and the amount absorbed at each
// site; once h stops, +Inf.
func (p *Problem) transport(h *halt, caps []float64) (float64, []float64) {
	n := len(p.Sites)
	if h.stopped() {
		return math.Inf(1), make([]float64, n)
	}
	caps, ok := p.scaledCaps(caps)
	if !ok {
		return math.Inf(1), make([]float64, n)
	}
	fl := newFlow(h, p, caps)
	if h.stopped() {
		return math.Inf(1), make([]float64, n)
	}
	return fl.value(), fl.absorbed
}

// scaledCaps returns the capacities scaled up uniformly when together they
// cannot take all traffic, and false when there are none.
func (p *Problem) scaledCaps(caps []float64) ([]float64, bool) {
	w, room := p.TotalTraffic(), 0.0
	for _, c := range caps {
		room += c
	}
	if room <= 0 {
		return nil, false
	}
	if room < w {
		scale := w / room * (1 + 1e-12)
		scaled := make([]float64, len(caps))
		for j, c := range caps {
			scaled[j] = c * scale
		}
		return scaled, true
	}
	return caps, true
}
