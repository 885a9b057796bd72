package placement

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// TestPlannerFamilies holds the planner to each family's worst gap and share
// of exact plans. Run with -v for the figures.
func TestPlannerFamilies(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 60
	}
	for _, f := range Families() {
		t.Run(f.Name, func(t *testing.T) {
			var gaps []float64
			for i, p := range f.Instances(n) {
				x, err := Plan(t.Context(), p)
				if err != nil {
					t.Fatalf("instance %d: %v", i, err)
				}
				opt, _ := Optimal(t.Context(), p)
				c, o := p.Cost(x), p.Cost(opt)
				if c < o-1e-6*math.Max(1, o) {
					t.Fatalf("instance %d: plan %v costs %v, below the optimum %v: the exact search is wrong", i, x, c, o)
				}
				gaps = append(gaps, gap(c, o))
			}
			mean, worst := summarise(gaps)
			exact := exactShare(gaps)
			t.Logf("%-46s %d instances: mean gap %.3f%%, worst %.3f%%, exact in %.1f%%", f.Name, len(gaps), mean, worst, 100*exact)
			if worst > f.WorstPct {
				t.Errorf("worst gap %.3f%% is above the family's %.1f%%", worst, f.WorstPct)
			}
			if exact < f.ExactMin {
				t.Errorf("exact in %.1f%% of instances, below the family's %.0f%%", 100*exact, 100*f.ExactMin)
			}
		})
	}
}

// regression is an instance on which the planner once missed the optimum.
type regression struct {
	Family  string   `json:"family"`
	Problem *Problem `json:"problem"`
	// OptimalCost is the exact optimum's cost; WasCost what the planner gave.
	OptimalCost float64 `json:"optimalCost"`
	WasCost     float64 `json:"wasCost"`
}

// TestPlannerRegressions replays every instance on which the planner of
// d664dc4 was not exact (testdata/planner-regressions.json, drawn from the
// families above). Without a rate limit the plan must now be the optimum;
// with one it must never be worse than it was.
func TestPlannerRegressions(t *testing.T) {
	data, err := os.ReadFile("testdata/planner-regressions.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []regression
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no regression cases")
	}
	exact := 0
	for i, r := range cases {
		p := fromJSON(r.Problem)
		x, err := Plan(t.Context(), p)
		if err != nil {
			t.Fatalf("case %d (%s): %v", i, r.Family, err)
		}
		c := p.Cost(x)
		tol := 1e-9 * math.Max(1, r.OptimalCost)
		switch {
		case c <= r.OptimalCost+tol:
			exact++
		case !p.capacitated():
			t.Errorf("case %d (%s, %d sites): plan costs %.4f, the optimum %.4f (was %.4f)", i, r.Family, len(p.Sites), c, r.OptimalCost, r.WasCost)
		case c > r.WasCost+tol:
			t.Errorf("case %d (%s, %d sites, rate limit): plan costs %.4f, worse than the %.4f it was", i, r.Family, len(p.Sites), c, r.WasCost)
		}
	}
	t.Logf("%d of %d instances once missed are now exact", exact, len(cases))
}

// fromJSON restores the unknown RTTs that JSON cannot carry as +Inf (-1 in the file).
func fromJSON(p *Problem) *Problem {
	for _, row := range p.RTT {
		for j, d := range row {
			if d < 0 {
				row[j] = math.Inf(1)
			}
		}
	}
	return p
}
