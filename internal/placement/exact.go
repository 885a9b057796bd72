package placement

import (
	"context"
	"fmt"
	"math"
)

// Limits of the exact optimum, in candidate placements examined.
const (
	// MaxExactSets bounds the sets of open sites tried without a rate limit:
	// every problem of up to 21 sites, and larger ones with few replicas.
	MaxExactSets = 2_000_000
	// MaxExactPlacements bounds the replica counts tried with a rate limit
	// (each is one min-cost transport): for example 10 sites and 8 replicas.
	MaxExactPlacements = 50_000
)

// TooLargeError says that the exact optimum was not computed.
type TooLargeError struct {
	Candidates, Limit float64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("exact optimum needs %.3g candidate placements, more than the limit of %.3g", e.Candidates, e.Limit)
}

// Optimal returns a placement of least cost, by enumeration. Without a rate
// limit it tries every set of min(replicas, usable sites) open sites (more open
// sites never cost more) and deals the surplus as Plan does; with one it tries
// every replica count per site. Problems beyond the limits give a *TooLargeError.
// It stops soon after ctx ends, returning ctx.Err() wrapped.
func Optimal(ctx context.Context, p *Problem) (Placement, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	h := newHalt(ctx)
	x, err := p.optimal(h, MaxExactSets, MaxExactPlacements)
	if err := h.err(fmt.Sprintf("exact optimum of %d replicas over %d sites", p.Replicas, len(p.Sites))); err != nil {
		return nil, err
	}
	return x, err
}

// optimal enumerates within the given budgets; the problem is valid. Once h
// stops, its result means nothing.
func (p *Problem) optimal(h *halt, maxSets, maxPlacements float64) (Placement, error) {
	if p.capacitated() {
		return p.optimalCounts(h, maxPlacements)
	}
	return p.optimalSets(h, maxSets)
}

func (p *Problem) optimalSets(h *halt, limit float64) (Placement, error) {
	n := len(p.Sites)
	forced, usable := 0, 0
	var free []int
	for j := 0; j < n; j++ {
		switch {
		case p.min(j) > 0:
			forced++
			usable++
		case p.Capacity[j] != 0:
			free = append(free, j)
			usable++
		}
	}
	open := min(p.Replicas, usable) - forced
	if open < 0 {
		open = 0
	}
	if c := binomial(len(free), open); c > limit {
		return nil, &TooLargeError{Candidates: c, Limit: limit}
	}
	x := p.base()
	for j := range x {
		if p.min(j) > 0 {
			x[j] = 1
		}
	}
	best := append(Placement(nil), x...)
	w := p.TotalTraffic()
	if w <= 0 {
		return p.balance(h, best), nil // every placement costs 0
	}
	// Depth-first over the sets, keeping per depth each traffic site's
	// distance to its nearest open site: a leaf costs O(traffic sites), not
	// O(sites x traffic sites) as a call of Cost would.
	var demand []int
	for i, wi := range p.Traffic {
		if wi > 0 {
			demand = append(demand, i)
		}
	}
	near := make([][]float64, open+1)
	for d := range near {
		near[d] = make([]float64, len(p.Traffic))
	}
	for _, i := range demand {
		near[0][i] = UnknownRTTPenaltyMs
		for j, v := range x {
			if v > 0 {
				near[0][i] = math.Min(near[0][i], p.dist(i, j))
			}
		}
	}
	bestCost := math.Inf(1)
	var walk func(start, depth int)
	walk = func(start, depth int) {
		if h.spend(len(demand)) {
			return
		}
		if depth == open {
			total := 0.0
			for _, i := range demand {
				total += p.Traffic[i] * near[depth][i]
			}
			if c := total / w; c < bestCost-eps {
				bestCost = c
				copy(best, x)
			}
			return
		}
		for k := start; k <= len(free)-(open-depth); k++ {
			j := free[k]
			x[j] = 1
			for _, i := range demand {
				near[depth+1][i] = math.Min(near[depth][i], p.dist(i, j))
			}
			walk(k+1, depth+1)
			x[j] = 0
		}
	}
	walk(0, 0)
	return p.balance(h, best), nil
}

func binomial(n, k int) float64 {
	if k < 0 || k > n {
		return 0
	}
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	return r
}

func (p *Problem) optimalCounts(h *halt, limit float64) (Placement, error) {
	n := len(p.Sites)
	x := p.base()
	left := p.Replicas - x.Total()
	upper := make([]int, n) // most replicas beyond the minimum each site can take
	for j := range upper {
		upper[j] = left
		if c := p.Capacity[j]; c != Unlimited {
			upper[j] = min(left, c-x[j])
		}
	}
	if c := boundedCompositions(upper, left); c > limit {
		return nil, &TooLargeError{Candidates: c, Limit: limit}
	}
	best := append(Placement(nil), x...)
	bestCost := math.Inf(1)
	var walk func(j, left int)
	walk = func(j, left int) {
		if h.stopped() {
			return
		}
		if j == n-1 {
			if left > upper[j] {
				return
			}
			x[j] += left
			if c := p.cost(h, x); c < bestCost-eps {
				bestCost = c
				copy(best, x)
			}
			x[j] -= left
			return
		}
		for k := 0; k <= min(left, upper[j]); k++ {
			x[j] += k
			walk(j+1, left-k)
			x[j] -= k
		}
	}
	walk(0, left)
	return best, nil
}

// boundedCompositions counts the ways to deal total among sites with the given
// upper bounds: +Inf once the count overflows. Prefix sums make each site
// cost O(total).
func boundedCompositions(upper []int, total int) float64 {
	ways := make([]float64, total+1)
	next := make([]float64, total+1)
	prefix := make([]float64, total+2)
	ways[0] = 1
	for _, u := range upper {
		for t := 0; t <= total; t++ {
			prefix[t+1] = prefix[t] + ways[t]
		}
		if math.IsInf(prefix[total+1], 1) {
			return math.Inf(1)
		}
		for t := 0; t <= total; t++ {
			next[t] = prefix[t+1] - prefix[max(0, t-u)]
		}
		ways, next = next, ways
	}
	return ways[total]
}
