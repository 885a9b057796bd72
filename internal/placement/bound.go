package placement

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
)

// BoundIterations is how many subgradient steps LowerBound takes at most.
const BoundIterations = 2000

// LowerBound returns a cost that no placement of p can beat: the Lagrangian
// dual bound of the placement problem, where enumeration cannot reach.
//
// Relaxing "all of traffic site k's traffic is served" with a multiplier
// lambda_k leaves a problem that splits by site: one more replica at site j
// takes, up to what it serves (PerReplicaRPS, scaled as Cost scales it when
// the replicas are overloaded; without a rate limit all of it), the traffic
// of the sites k with dist(k, j) < lambda_k, the most worthwhile first (a
// fractional knapsack). Its optimum over the replica counts (within
// capacities and minimums, adding up to Replicas) is the largest savings
// dealt greedily, since each site's savings shrink with every replica. For
// any multipliers the sum is a lower bound on Cost; the multipliers are
// improved by subgradient steps (Polyak's rule against x's cost), started
// from x's own marginal costs: the nearest replica's distance, or, with a
// rate limit, the transport's duals.
//
// x is a good placement of p (the plan): its cost is the upper bound the
// steps aim at, and the bound is never above it. It stops soon after ctx
// ends, returning ctx.Err() wrapped.
func LowerBound(ctx context.Context, p *Problem, x Placement) (float64, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	if len(x) != len(p.Sites) || x.Total() != p.Replicas {
		return 0, fmt.Errorf("placement of %d replicas over %d sites is not one of the problem's %d replicas over %d sites",
			x.Total(), len(x), p.Replicas, len(p.Sites))
	}
	h := newHalt(ctx)
	lb := p.lowerBound(h, x)
	if err := h.err(fmt.Sprintf("lower bound of %d replicas over %d sites", p.Replicas, len(p.Sites))); err != nil {
		return 0, err
	}
	return lb, nil
}

func (p *Problem) lowerBound(h *halt, x Placement) float64 {
	w := p.TotalTraffic()
	upper := p.cost(h, x)
	if w <= 0 || p.Replicas == 0 {
		return upper // every placement costs the same
	}
	dc := p.distCols()
	src := dc.src
	n, S := len(p.Sites), len(src)
	lambda := make([]float64, S)
	if p.capacitated() {
		fl := newFlow(h, p, p.replicaCaps(x))
		for k := range src {
			lambda[k] = fl.ht - fl.hs[k]
		}
	} else {
		near := p.nearestAll(x)
		for k, i := range src {
			lambda[k] = near[i]
		}
	}
	// Per replica, what one serves at most: with a rate limit as Cost scales
	// it for Replicas replicas; without, everything.
	per := math.Inf(1)
	if p.capacitated() {
		per = p.capOf(1, p.capScale(p.Replicas))
	}
	best := 0.0
	served := make([]float64, S) // per source, the traffic the relaxed solution serves
	items := make([][]knapItem, n)
	type step struct {
		j    int
		save float64 // the knapsack's fall for this replica (<= 0)
	}
	var steps []step
	theta, stale := 2.0, 0
	for range BoundIterations {
		if h.spend(S * n) {
			return 0
		}
		steps = steps[:0]
		base := 0.0
		for k, l := range lambda {
			base += l * p.Traffic[src[k]]
		}
		forced := 0
		for j := range n {
			its := items[j][:0]
			for k, d := range dc.col(j) {
				if a := d - lambda[k]; a < 0 {
					its = append(its, knapItem{a, dc.w[k], k})
				}
			}
			slices.SortFunc(its, func(a, b knapItem) int {
				return cmp.Compare(a.a, b.a)
			})
			items[j] = its
			limit := p.Replicas
			if c := p.Capacity[j]; c != Unlimited {
				limit = min(limit, c)
			}
			// The falls of the site's knapsack replica by replica, as long as
			// they are negative (at most one without a rate limit).
			prev, room := 0.0, 0.0
			for t := 1; t <= limit; t++ {
				room += per
				v := knapValue(its, room)
				if t <= p.min(j) {
					base += v - prev
					forced++
				} else if v < prev {
					steps = append(steps, step{j, v - prev})
				} else {
					break
				}
				prev = v
				if math.IsInf(per, 1) {
					break
				}
			}
		}
		slices.SortFunc(steps, func(a, b step) int {
			return cmp.Compare(a.save, b.save)
		})
		take := make([]int, n)
		for j := range n {
			take[j] = p.min(j)
		}
		L := base
		for _, s := range steps[:min(len(steps), p.Replicas-forced)] {
			L += s.save
			take[s.j]++
		}
		if L/w > best+1e-12*math.Max(1, best) {
			best, stale = L/w, 0
		} else if stale++; stale >= 30 {
			theta, stale = theta/2, 0
		}
		if best >= upper*(1-1e-9) || theta < 1e-4 {
			break
		}
		// The subgradient: each source's traffic less what the relaxed
		// solution serves of it.
		clear(served)
		for j, t := range take {
			if t == 0 {
				continue
			}
			c := per * float64(t)
			for _, it := range items[j] {
				if c <= 0 {
					break
				}
				y := math.Min(it.w, c)
				served[it.k] += y
				c -= y
			}
		}
		norm := 0.0
		for k := range served {
			g := p.Traffic[src[k]] - served[k]
			served[k] = g
			norm += g * g
		}
		if norm <= 0 {
			break // the relaxed solution serves every source once: optimal
		}
		stepLen := theta * (upper*w - L) / norm
		for k, g := range served {
			lambda[k] = math.Max(0, lambda[k]+stepLen*g)
		}
	}
	return math.Min(best, upper)
}
