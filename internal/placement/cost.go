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
	caps := make([]float64, len(x))
	for j, n := range x {
		caps[j] = p.PerReplicaRPS * float64(n)
	}
	cost, _ := p.transport(h, caps)
	return cost
}

// transport solves the min-cost transport from traffic sites to sites with the
// given absorbing capacities by successive shortest paths (Dijkstra with
// potentials on the dense bipartite residual graph). It returns the total cost
// and the amount absorbed at each site; once h stops, +Inf.
func (p *Problem) transport(h *halt, caps []float64) (float64, []float64) {
	n := len(p.Sites)
	if h.stopped() {
		return math.Inf(1), make([]float64, n)
	}
	w, room := p.TotalTraffic(), 0.0
	for _, c := range caps {
		room += c
	}
	if room <= 0 {
		return math.Inf(1), make([]float64, n)
	}
	if room < w {
		scale := w / room * (1 + 1e-12)
		scaled := make([]float64, n)
		for j, c := range caps {
			scaled[j] = c * scale
		}
		caps = scaled
	}
	// Nodes: 0 source, 1..n traffic sites, n+1..2n replica sites, 2n+1 sink.
	src, sink, nodes := 0, 2*n+1, 2*n+2
	left := func(i int) int { return 1 + i }
	right := func(j int) int { return 1 + n + j }
	supply := append([]float64(nil), p.Traffic...) // left to send from the source
	spare := append([]float64(nil), caps...)       // left to absorb at each site
	flow := make([][]float64, n)
	for i := range flow {
		flow[i] = make([]float64, n)
	}
	absorbed := make([]float64, n)
	pot := make([]float64, nodes)
	dist := make([]float64, nodes)
	prev := make([]int, nodes)
	done := make([]bool, nodes)
	total, remaining := 0.0, w

	// arcs enumerates the residual arcs leaving u: head, reduced-cost base, residual capacity.
	arcs := func(u int, visit func(v int, cost, capacity float64)) {
		switch {
		case u == src:
			for i := 0; i < n; i++ {
				if supply[i] > eps {
					visit(left(i), 0, supply[i])
				}
			}
		case u <= n:
			i := u - 1
			if p.Traffic[i]-supply[i] > eps {
				visit(src, 0, p.Traffic[i]-supply[i])
			}
			for j := 0; j < n; j++ {
				visit(right(j), p.dist(i, j), math.Inf(1))
			}
		case u < sink:
			j := u - 1 - n
			if spare[j] > eps {
				visit(sink, 0, spare[j])
			}
			for i := 0; i < n; i++ {
				if flow[i][j] > eps {
					visit(left(i), -p.dist(i, j), flow[i][j])
				}
			}
		default:
			for j := 0; j < n; j++ {
				if absorbed[j] > eps {
					visit(right(j), 0, absorbed[j])
				}
			}
		}
	}

	for remaining > eps*math.Max(1, w) {
		for v := range dist {
			dist[v], prev[v], done[v] = math.Inf(1), -1, false
		}
		dist[src] = 0
		for {
			u, best := -1, math.Inf(1)
			for v := 0; v < nodes; v++ {
				if !done[v] && dist[v] < best {
					u, best = v, dist[v]
				}
			}
			if u < 0 || u == sink {
				break
			}
			if h.spend(nodes + n) {
				return math.Inf(1), absorbed
			}
			done[u] = true
			arcs(u, func(v int, cost, _ float64) {
				if d := dist[u] + cost + pot[u] - pot[v]; d < dist[v]-1e-12 && !done[v] {
					dist[v], prev[v] = d, u
				}
			})
		}
		if math.IsInf(dist[sink], 1) {
			break
		}
		for v := range pot {
			pot[v] += math.Min(dist[v], dist[sink])
		}
		// Bottleneck along the path.
		push := remaining
		for v := sink; v != src; v = prev[v] {
			u := prev[v]
			arcs(u, func(h int, _, capacity float64) {
				if h == v {
					push = math.Min(push, capacity)
				}
			})
		}
		for v := sink; v != src; v = prev[v] {
			u := prev[v]
			switch {
			case u == src:
				supply[v-1] -= push
			case v == src:
				supply[u-1] += push
			case v == sink:
				spare[u-1-n] -= push
				absorbed[u-1-n] += push
			case u == sink:
				spare[v-1-n] += push
				absorbed[v-1-n] -= push
			case u <= n: // traffic site -> replica site
				flow[u-1][v-1-n] += push
				total += push * p.dist(u-1, v-1-n)
			default: // replica site -> traffic site: undo flow
				flow[v-1][u-1-n] -= push
				total -= push * p.dist(v-1, u-1-n)
			}
		}
		remaining -= push
	}
	return total, absorbed
}
