package placement

import "math/rand/v2"

// Family is a family of planner instances small enough for the exact
// optimum, with the worst gap and the share of exact plans the planner must
// reach on it (TestPlannerFamilies holds it to them; the benchmark report
// prints them).
type Family struct {
	Name     string
	Draw     func(rng *rand.Rand) RandomOptions
	WorstPct float64 // the largest gap to the optimum allowed, in %
	ExactMin float64 // the smallest share of exact plans allowed
	seed     uint64
}

func sizes(rng *rand.Rand, lo, hi int) int { return lo + rng.IntN(hi-lo+1) }

// Families are the instance families of issue 22: RTTs that break the triangle
// rule and fully random ones, clustered sites, 13-20 sites without a rate
// limit, and site minimums, mixed capacities and unknown RTTs; each also with a
// rate limit where the exact optimum still fits.
func Families() []Family {
	fs := []Family{
		{"detoured 8-12", func(rng *rand.Rand) RandomOptions {
			s := sizes(rng, 8, 12)
			return RandomOptions{Sites: s, Replicas: 1 + rng.IntN(s), RTT: Detoured}
		}, 0.5, 0.99, 0},
		{"uniform 8-12", func(rng *rand.Rand) RandomOptions {
			s := sizes(rng, 8, 12)
			return RandomOptions{Sites: s, Replicas: 1 + rng.IntN(s), RTT: Uniform}
		}, 2, 0.98, 0},
		{"clustered 8-12", func(rng *rand.Rand) RandomOptions {
			s := sizes(rng, 8, 12)
			return RandomOptions{Sites: s, Replicas: 1 + rng.IntN(s), RTT: Clustered}
		}, 0.5, 0.99, 0},
		{"uniform 13-20", func(rng *rand.Rand) RandomOptions {
			s := sizes(rng, 13, 20)
			return RandomOptions{Sites: s, Replicas: 1 + rng.IntN(s), RTT: Uniform}
		}, 2, 0.98, 0},
		{"detoured 13-20", func(rng *rand.Rand) RandomOptions {
			s := sizes(rng, 13, 20)
			return RandomOptions{Sites: s, Replicas: 1 + rng.IntN(s), RTT: Detoured}
		}, 0.5, 0.99, 0},
		{"minimums, mixed capacities, unknown RTTs 6-12", func(rng *rand.Rand) RandomOptions {
			s := sizes(rng, 6, 12)
			return RandomOptions{Sites: s, Replicas: 1 + rng.IntN(s+3), RTT: Detoured,
				MixedCapacity: true, MinShare: 0.15, UnknownShare: 0.1}
		}, 0.5, 0.99, 0},
		{"detoured, rate limit 6-10", func(rng *rand.Rand) RandomOptions {
			s := sizes(rng, 6, 10)
			return RandomOptions{Sites: s, Replicas: 1 + rng.IntN(7), RTT: Detoured, PerReplicaShare: 0.05 + 0.3*rng.Float64()}
		}, 5, 0.98, 0},
		// With a rate limit on uniformly random RTTs the single-move search still
		// stops up to 14 % above the optimum on one instance in 150 or so: what
		// this family allows is what the planner reaches today, not a goal.
		{"uniform, rate limit 6-10", func(rng *rand.Rand) RandomOptions {
			s := sizes(rng, 6, 10)
			return RandomOptions{Sites: s, Replicas: 1 + rng.IntN(7), RTT: Uniform, PerReplicaShare: 0.05 + 0.3*rng.Float64()}
		}, 15, 0.98, 0},
	}
	for k := range fs {
		fs[k].seed = uint64(k)
	}
	return fs
}

// Instances draws n instances of the family that the exact optimum can
// solve; the same family and n always give the same instances.
func (f Family) Instances(n int) []*Problem {
	rng := rand.New(rand.NewPCG(f.seed, 22))
	var out []*Problem
	for len(out) < n {
		p := RandomProblem(rng, f.Draw(rng))
		if p.Validate() != nil {
			continue
		}
		if _, err := p.optimal(nil, MaxExactSets, MaxExactPlacements); err != nil {
			continue
		}
		out = append(out, p)
	}
	return out
}
