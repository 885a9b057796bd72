package placement

import (
	"math"
	"math/rand/v2"
	"testing"
)

// randomLimited draws a rate-limited problem of every shape: RTT models,
// capacities, minimums, unknown RTTs, and limits from overloaded to loose.
func randomLimited(rng *rand.Rand, maxSites int) *Problem {
	s := 2 + rng.IntN(maxSites-1)
	o := RandomOptions{Sites: s, Replicas: 1 + rng.IntN(s+3), RTT: RTTModel(rng.IntN(4))}
	o.PerReplicaShare = (0.3 + 3*rng.Float64()) / float64(o.Replicas)
	if rng.IntN(3) == 0 {
		o.MixedCapacity, o.MinShare, o.UnknownShare = true, 0.1, 0.1
	}
	return RandomProblem(rng, o)
}

// randomPlacement deals r replicas at random, within capacities.
func randomPlacement(rng *rand.Rand, p *Problem, r int) Placement {
	x := p.base()
	for x.Total() < r {
		j := rng.IntN(len(x))
		if p.room(x, j) {
			x[j]++
		}
	}
	return x
}

// TestFlowMatchesOldTransport: the warm-started flow's cost is the old
// solver's on random placements, solved cold and after trials.
func TestFlowMatchesOldTransport(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 1))
	for k := range 300 {
		p := randomLimited(rng, 40)
		if p.Validate() != nil || p.TotalTraffic() <= 0 {
			continue
		}
		x := randomPlacement(rng, p, p.Replicas)
		if x.Total() == 0 {
			continue
		}
		want := p.oldTransportCost(nil, x)
		fl := newFlow(nil, p, p.replicaCaps(x))
		if got := fl.value(); math.Abs(got-want) > 1e-7*math.Max(1, want) {
			t.Fatalf("instance %d, %v: flow cost %v, old transport %v", k, x, got, want)
		}
		// Moves, tried and rolled back, then made.
		scale := p.capScale(x.Total())
		for range 5 {
			from, to := rng.IntN(len(x)), rng.IntN(len(x))
			if from == to || x[from] <= p.min(from) || !p.room(x, to) {
				continue
			}
			y := append(Placement(nil), x...)
			y[from]--
			y[to]++
			want := p.oldTransportCost(nil, y)
			fl.mark()
			fl.setCap(from, p.capOf(y[from], scale))
			fl.setCap(to, p.capOf(y[to], scale))
			fl.solve(nil)
			if got := fl.value(); math.Abs(got-want) > 1e-7*math.Max(1, want) {
				t.Fatalf("instance %d, %v -> %v: flow cost %v, old transport %v", k, x, y, got, want)
			}
			if rng.IntN(2) == 0 {
				fl.rollback()
				if got, want := fl.value(), p.oldTransportCost(nil, x); math.Abs(got-want) > 1e-7*math.Max(1, want) {
					t.Fatalf("instance %d: after rollback %v, want %v", k, got, want)
				}
				continue
			}
			fl.commit()
			x = y
		}
	}
}

// TestLimitedGainsMatchOldTransport: with a rate limit, every site's gain is
// the drop in the old solver's cost, on random workloads up to 60 sites with
// loose, tight and overloaded limits (the columns' trials and the exact
// Lagrangian shortcut both run).
func TestLimitedGainsMatchOldTransport(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 2))
	for k := range 120 {
		p := randomLimited(rng, 60)
		if p.Validate() != nil || p.TotalTraffic() <= 0 {
			continue
		}
		cur := randomPlacement(rng, p, rng.IntN(p.Replicas+1))
		g, err := MarginalGains(t.Context(), p, cur)
		if err != nil {
			t.Fatal(err)
		}
		oldCost := func(x Placement) float64 {
			if x.Total() == 0 {
				return UnknownRTTPenaltyMs
			}
			return p.oldTransportCost(nil, x) / p.TotalTraffic()
		}
		base := oldCost(cur)
		for j := range cur {
			next := append(Placement(nil), cur...)
			next[j]++
			if want := base - oldCost(next); math.Abs(g.Gain[j]-want) > 1e-7*math.Max(1, math.Abs(base)) {
				t.Fatalf("instance %d (%d sites, %v), site %d: gain %v, old cost difference %v", k, len(cur), cur, j, g.Gain[j], want)
			}
		}
	}
}
