package placement

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkPlan measures the planner on random edge clusters. The sub-benchmark
// names give sites, replicas and the per-replica rate limit (share of traffic).
func BenchmarkPlan(b *testing.B) {
	cases := []RandomOptions{
		{Sites: 50, Replicas: 20},
		{Sites: 50, Replicas: 1000},
		{Sites: 500, Replicas: 100},
		{Sites: 500, Replicas: 1000},
		{Sites: 50, Replicas: 20, PerReplicaShare: 0.08},
	}
	for _, o := range cases {
		p := RandomProblem(rand.New(rand.NewPCG(7, uint64(o.Sites))), o)
		b.Run(fmt.Sprintf("sites=%d/replicas=%d/share=%v", o.Sites, o.Replicas, o.PerReplicaShare), func(b *testing.B) {
			for b.Loop() {
				if _, err := Plan(b.Context(), p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOptimal12Sites is the exact optimum at the size `ning place` promises.
func BenchmarkOptimal12Sites(b *testing.B) {
	p := RandomProblem(rand.New(rand.NewPCG(8, 12)), RandomOptions{Sites: 12, Replicas: 6})
	for b.Loop() {
		if _, err := Optimal(b.Context(), p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScore is the scheduler's incremental score: MarginalGains once per
// pod, then one lookup per node (5,000 nodes spread over the sites).
func BenchmarkScore(b *testing.B) {
	for _, sites := range []int{50, 500} {
		p := RandomProblem(rand.New(rand.NewPCG(9, uint64(sites))), RandomOptions{Sites: sites, Replicas: 10})
		cur := make(Placement, sites)
		for r := range 10 {
			cur[(r*7)%sites]++
		}
		nodeSite := make([]int, 5000)
		for i := range nodeSite {
			nodeSite[i] = i % sites
		}
		b.Run(fmt.Sprintf("per-pod/sites=%d", sites), func(b *testing.B) {
			for b.Loop() {
				if _, err := MarginalGains(b.Context(), p, cur); err != nil {
					b.Fatal(err)
				}
			}
		})
		g, err := MarginalGains(b.Context(), p, cur)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("per-node/sites=%d", sites), func(b *testing.B) {
			var sink float64
			i := 0
			for b.Loop() {
				sink += g.Gain[nodeSite[i%len(nodeSite)]]
				i++
			}
			_ = sink
		})
	}
}

// BenchmarkScoreLimited is MarginalGains with a per-replica rate limit, ten
// replicas running: sites=N, they serve 80 % of the traffic together, so one
// more changes every site's capacity (every trial re-solves them all);
// loose/sites=N, each serves 20 % (one more adds capacity at one site).
func BenchmarkScoreLimited(b *testing.B) {
	for _, sites := range []int{50, 100, 200, 500} {
		for _, c := range []struct {
			name  string
			share float64
		}{{"", 0.08}, {"loose/", 0.2}} {
			p := RandomProblem(rand.New(rand.NewPCG(9, uint64(sites))), RandomOptions{Sites: sites, Replicas: 10, PerReplicaShare: c.share})
			cur := make(Placement, len(p.Sites))
			for r := range 10 {
				cur[(r*7)%len(cur)]++
			}
			b.Run(fmt.Sprintf("%ssites=%d", c.name, sites), func(b *testing.B) {
				for b.Loop() {
					if _, err := MarginalGains(b.Context(), p, cur); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkPlanLimited is the capacity-aware planner as the benchmark report
// times it (replicas = sites / 2, each serving 3 / replicas of the traffic),
// and at 500 sites with 1,000 replicas.
func BenchmarkPlanLimited(b *testing.B) {
	cases := []RandomOptions{
		{Sites: 50, Replicas: 25},
		{Sites: 100, Replicas: 50},
		{Sites: 200, Replicas: 100},
		{Sites: 500, Replicas: 250},
		{Sites: 500, Replicas: 1000},
		{Sites: 1000, Replicas: 500},
	}
	for _, o := range cases {
		o.PerReplicaShare = 3.0 / float64(o.Replicas)
		p := RandomProblem(rand.New(rand.NewPCG(7, uint64(o.Sites))), o)
		b.Run(fmt.Sprintf("sites=%d/replicas=%d", o.Sites, o.Replicas), func(b *testing.B) {
			for b.Loop() {
				if _, err := Plan(b.Context(), p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPlanSmall(b *testing.B) {
	for _, o := range []RandomOptions{
		{Sites: 10, Replicas: 7, PerReplicaShare: 0.2, RTT: Uniform},
		{Sites: 16, Replicas: 8, RTT: Uniform},
		{Sites: 20, Replicas: 10, RTT: Uniform},
	} {
		p := RandomProblem(rand.New(rand.NewPCG(7, uint64(o.Sites))), o)
		b.Run(fmt.Sprintf("sites=%d/replicas=%d/share=%v", o.Sites, o.Replicas, o.PerReplicaShare), func(b *testing.B) {
			for b.Loop() {
				if _, err := Plan(b.Context(), p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
