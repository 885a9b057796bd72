package placement

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// RandomOptions shapes a random problem.
type RandomOptions struct {
	Sites    int
	Replicas int
	// PerReplicaRPS, when positive, sets a serving limit of roughly this share of
	// the total traffic per replica (e.g. 0.2 = each replica serves a fifth).
	PerReplicaShare float64
	// Capacity, when positive, limits every site to this many replicas.
	Capacity int
}

// RandomProblem draws a problem like an edge cluster: sites scattered on a
// 4000 km square, RTT from distance (about 1 ms per 100 km of fibre, plus
// 1-5 ms of access delay and asymmetry up to 10 %), and heavy-tailed traffic
// (a few busy sites, many quiet ones, some with none).
func RandomProblem(rng *rand.Rand, o RandomOptions) *Problem {
	n := o.Sites
	p := &Problem{
		Sites:    make([]string, n),
		Traffic:  make([]float64, n),
		Capacity: make([]int, n),
		RTT:      make([][]float64, n),
		Replicas: o.Replicas,
	}
	xs, ys, access := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		p.Sites[i] = fmt.Sprintf("site-%03d", i)
		xs[i], ys[i] = rng.Float64()*4000, rng.Float64()*4000
		access[i] = 1 + 4*rng.Float64()
		if rng.Float64() < 0.8 {
			p.Traffic[i] = math.Round(10 * math.Exp(3*rng.Float64()) * rng.Float64())
		}
		p.Capacity[i] = Unlimited
		if o.Capacity > 0 {
			p.Capacity[i] = o.Capacity
		}
	}
	for i := range n {
		p.RTT[i] = make([]float64, n)
		for j := range n {
			if i == j {
				continue
			}
			km := math.Hypot(xs[i]-xs[j], ys[i]-ys[j])
			rtt := km/100 + access[i] + access[j]
			p.RTT[i][j] = math.Round(rtt*(1+0.1*rng.Float64())*10) / 10
		}
	}
	if o.PerReplicaShare > 0 {
		p.PerReplicaRPS = math.Max(1, p.TotalTraffic()*o.PerReplicaShare)
	}
	return p
}

// QualityInstances is the benchmark set for the planner's quality: n random
// problems of 2 to 10 sites, a third with a per-replica rate limit, a third
// with per-site capacities, all within the exact optimum's reach. The same n
// always gives the same set.
func QualityInstances(n int) []*Problem {
	rng := rand.New(rand.NewPCG(2026, 11))
	var out []*Problem
	for len(out) < n {
		sites := 2 + rng.IntN(9)
		// Mostly fewer replicas than sites (the hard case); some with more.
		o := RandomOptions{Sites: sites, Replicas: 1 + rng.IntN(sites+3)}
		switch len(out) % 3 {
		case 1:
			o.PerReplicaShare = 0.05 + 0.3*rng.Float64()
			o.Replicas = 1 + rng.IntN(8)
		case 2:
			o.Capacity = 1 + rng.IntN(4)
		}
		p := RandomProblem(rng, o)
		if p.Validate() != nil {
			continue
		}
		if _, err := Optimal(p); err != nil {
			continue // beyond the exact limit: not a quality instance
		}
		out = append(out, p)
	}
	return out
}
