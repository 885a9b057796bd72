package placement

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestLowerBoundBelowOptimum: on instances the exact optimum reaches (with and
// without a rate limit, capacities, minimums and unknown RTTs), the bound is
// never above the optimum, and on most it is close to it.
func TestLowerBoundBelowOptimum(t *testing.T) {
	instances := QualityInstances(150)
	for _, f := range Families() {
		instances = append(instances, f.Instances(15)...)
	}
	close := 0
	for k, p := range instances {
		opt, err := Optimal(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		o := p.Cost(opt)
		// Aimed at a worse placement, so that its cost (which the bound never
		// exceeds) hides no bound above the optimum.
		loose, err := LowerBound(t.Context(), p, Spread(p))
		if err != nil {
			t.Fatal(err)
		}
		if loose > o*(1+1e-9)+1e-12 || loose < 0 || math.IsNaN(loose) {
			t.Fatalf("instance %d (%d sites, %d replicas, rate %v): bound %v, optimum %v", k, len(p.Sites), p.Replicas, p.PerReplicaRPS, loose, o)
		}
		lb, err := LowerBound(t.Context(), p, opt)
		if err != nil {
			t.Fatal(err)
		}
		if o-lb <= 0.01*o+1e-9 {
			close++
		}
	}
	if share := float64(close) / float64(len(instances)); share < 0.8 {
		t.Fatalf("the bound is within 1 %% of the optimum on %.0f %% of the instances, want at least 80 %%", 100*share)
	}
}

// TestLowerBoundErrors: a placement that is not one of the problem's is
// refused, with the reason.
func TestLowerBoundErrors(t *testing.T) {
	p := RandomProblem(rand.New(rand.NewPCG(1, 1)), RandomOptions{Sites: 4, Replicas: 2})
	_, err := LowerBound(t.Context(), p, Placement{1, 0, 0, 0})
	if want := "placement of 1 replicas over 4 sites is not one of the problem's 2 replicas over 4 sites"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}
