package placement

import "math"

// The successive-shortest-path transport on the dense bipartite graph that
// Cost used before the warm-started flow (flow.go), kept to check the new
// solver against.

// transportCost is the least total cost (rate x ms) of routing all traffic to
// replicas, each site j absorbing at most PerReplicaRPS*x[j] (scaled up
// uniformly when the replicas cannot absorb it all).
func (p *Problem) oldTransportCost(h *halt, x Placement) float64 {
	caps := make([]float64, len(x))
	for j, n := range x {
		caps[j] = p.PerReplicaRPS * float64(n)
	}
	cost, _ := p.oldTransport(h, caps)
	return cost
}

// transport solves the min-cost transport from traffic sites to sites with the
// given absorbing capacities by successive shortest paths (Dijkstra with
// potentials on the dense bipartite residual graph). It returns the total cost
// and the amount absorbed at each site; once h stops, +Inf.
func (p *Problem) oldTransport(h *halt, caps []float64) (float64, []float64) {
	n := len(p.Sites)
	if h.stopped() {
		return math.Inf(1), make([]float64, n)
	}
	w := p.TotalTraffic()
	caps, ok := p.scaledCaps(caps)
	if !ok {
		return math.Inf(1), make([]float64, n)
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
