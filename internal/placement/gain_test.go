package placement

import (
	"math"
	"math/rand/v2"
	"testing"
)

// gainCase names how one more replica changes the capacities.
type gainCase int

const (
	overloaded gainCase = iota // the replicas serve less than all traffic, with one more too
	mixed                      // they do, but one more serves it all
	loose                      // they serve it all already
)

func (c gainCase) String() string {
	return [...]string{"overloaded", "mixed", "loose"}[c]
}

// limitedGainsInstance draws a workload of 5 to maxSites sites (every RTT
// model, some with mixed capacities, minimums and unknown RTTs), replicas
// running at random, and a per-replica rate that makes the case c.
func limitedGainsInstance(rng *rand.Rand, maxSites int, c gainCase) (*Problem, Placement) {
	for {
		s := 5 + rng.IntN(maxSites-4)
		o := RandomOptions{Sites: s, Replicas: 1 + rng.IntN(min(s, 12)), RTT: RTTModel(rng.IntN(4)), PerReplicaShare: 0.1}
		if rng.IntN(3) == 0 {
			o.MixedCapacity, o.MinShare, o.UnknownShare = true, 0.1, 0.1
		}
		p := RandomProblem(rng, o)
		w := p.TotalTraffic()
		if p.Validate() != nil || w <= 0 {
			continue
		}
		cur := randomPlacement(rng, p, o.Replicas)
		p.PerReplicaRPS = rateFor(rng, w, cur.Total(), c)
		return p, cur
	}
}

// rateFor draws a per-replica rate that makes the case c for total traffic
// w and t replicas.
func rateFor(rng *rand.Rand, w float64, t int, c gainCase) float64 {
	r := float64(t)
	switch c {
	case overloaded:
		return w / (r + 1) * (0.2 + 0.79*rng.Float64())
	case mixed:
		if rng.IntN(8) == 0 {
			return w / (r + 1) // exactly enough with one more
		}
		return w * (1/(r+1) + (1/r-1/(r+1))*(0.01+0.98*rng.Float64()))
	}
	return w / r * (1 + 2*rng.Float64())
}

// TestLimitedGainsMatchTrials: MarginalGains with a rate limit gives every
// site the gain that a trial of one more replica there on the flow gives
// (oldLimitedGains), to 1e-9 of the mean RTT, on random workloads of 5 to
// 200 sites in each case of how one more replica changes the capacities, and
// on the rate-limited instance families.
func TestLimitedGainsMatchTrials(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 1))
	worst := 0.0 // the largest difference seen, over the mean RTT
	defer func() { t.Logf("largest difference %.3g of the mean RTT", worst) }()
	check := func(t *testing.T, p *Problem, cur Placement, what string) {
		t.Helper()
		g, err := MarginalGains(t.Context(), p, cur)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float64, len(cur))
		p.oldLimitedGains(nil, cur, want)
		mean := p.Cost(cur)
		for j := range cur {
			worst = math.Max(worst, math.Abs(g.Gain[j]-want[j])/math.Max(1, mean))
			if math.Abs(g.Gain[j]-want[j]) > 1e-9*math.Max(1, mean) {
				t.Fatalf("%s (%d sites, %v, rate %v): site %d gain %v, a trial gives %v (mean RTT %v)",
					what, len(cur), cur, p.PerReplicaRPS, j, g.Gain[j], want[j], mean)
			}
		}
	}
	for _, c := range []gainCase{overloaded, mixed, loose} {
		t.Run(c.String(), func(t *testing.T) {
			for k := range 60 {
				maxSites := 30
				switch {
				case k%10 == 9:
					maxSites = 200
				case k%5 == 4:
					maxSites = 80
				}
				p, cur := limitedGainsInstance(rng, maxSites, c)
				if scale, next := p.capScale(cur.Total()), p.capScale(cur.Total()+1); (c == loose) != (scale == next) {
					t.Fatalf("instance %d: scale %v, with one more %v: not the %v case", k, scale, next, c)
				}
				check(t, p, cur, c.String())
			}
		})
	}
	// The families' instances (unknown RTTs, minimums, mixed capacities
	// among them), with their rate limit where they have one and with one
	// of each case.
	t.Run("families", func(t *testing.T) {
		for _, f := range Families() {
			for _, p := range f.Instances(10) {
				if p.TotalTraffic() <= 0 {
					continue
				}
				cur := randomPlacement(rng, p, 1+rng.IntN(p.Replicas))
				if p.capacitated() {
					check(t, p, cur, f.Name)
				}
				for _, c := range []gainCase{overloaded, mixed, loose} {
					q := *p
					q.PerReplicaRPS = rateFor(rng, p.TotalTraffic(), cur.Total(), c)
					check(t, &q, cur, f.Name+", "+c.String())
				}
			}
		}
	})
}
