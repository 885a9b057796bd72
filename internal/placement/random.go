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
	// RTT chooses how the RTTs are drawn (Geographic by default).
	RTT RTTModel
	// MixedCapacity gives each site its own limit of 0 to 4 replicas, with
	// about a third unlimited (Capacity is then ignored).
	MixedCapacity bool
	// MinShare is the chance that a site must keep one replica.
	MinShare float64
	// UnknownShare is the chance that an RTT between two sites is unknown.
	UnknownShare float64
}

// RTTModel is how RandomProblem draws the RTTs between sites.
type RTTModel int

const (
	// Geographic RTTs follow distance on a map: they obey the triangle rule
	// up to access delay and asymmetry.
	Geographic RTTModel = iota
	// Detoured RTTs are geographic, but a third of the pairs are routed the
	// long way round (1.5-3x) or take a short cut (0.3-0.7x), as internet
	// routing does: the triangle rule breaks.
	Detoured
	// Uniform RTTs are drawn independently between 1 and 100 ms: adversarial,
	// with no structure for a heuristic to exploit.
	Uniform
	// Clustered sites sit in 2-5 tight metro clusters far apart.
	Clustered
)

func (m RTTModel) String() string {
	switch m {
	case Geographic:
		return "geographic"
	case Detoured:
		return "detoured"
	case Uniform:
		return "uniform"
	case Clustered:
		return "clustered"
	}
	return fmt.Sprintf("RTTModel(%d)", int(m))
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
	var cx, cy []float64 // cluster centres
	if o.RTT == Clustered {
		for range 2 + rng.IntN(4) {
			cx, cy = append(cx, rng.Float64()*4000), append(cy, rng.Float64()*4000)
		}
	}
	for i := range n {
		p.Sites[i] = fmt.Sprintf("site-%03d", i)
		xs[i], ys[i] = rng.Float64()*4000, rng.Float64()*4000
		if cx != nil {
			c := rng.IntN(len(cx))
			xs[i], ys[i] = cx[c]+rng.NormFloat64()*60, cy[c]+rng.NormFloat64()*60
		}
		access[i] = 1 + 4*rng.Float64()
		if rng.Float64() < 0.8 {
			p.Traffic[i] = math.Round(10 * math.Exp(3*rng.Float64()) * rng.Float64())
		}
		p.Capacity[i] = Unlimited
		switch {
		case o.MixedCapacity:
			if rng.Float64() < 0.66 {
				p.Capacity[i] = rng.IntN(5)
			}
		case o.Capacity > 0:
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
			switch o.RTT {
			case Uniform:
				rtt = 1 + 99*rng.Float64()
			case Detoured:
				if rng.Float64() < 1.0/3 {
					if rng.Float64() < 0.5 {
						rtt *= 1.5 + 1.5*rng.Float64()
					} else {
						rtt *= 0.3 + 0.4*rng.Float64()
					}
				}
			}
			p.RTT[i][j] = math.Round(rtt*(1+0.1*rng.Float64())*10) / 10
			if o.UnknownShare > 0 && rng.Float64() < o.UnknownShare {
				p.RTT[i][j] = math.Inf(1)
			}
		}
	}
	if o.MinShare > 0 {
		p.Min = make([]int, n)
		for i := range p.Min {
			if p.Capacity[i] != 0 && rng.Float64() < o.MinShare {
				p.Min[i] = 1
			}
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
		if _, err := p.optimal(nil, MaxExactSets, MaxExactPlacements); err != nil {
			continue // beyond the exact limit: not a quality instance
		}
		out = append(out, p)
	}
	return out
}
