package placement

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"testing"
)

// limitedCase is one rate-limited planner instance, drawn by RandomProblem
// from Options with a generator seeded by Seed, and the cost the planner
// reached on it before the warm-started flow (commit aa10e4d, where the
// 100-site ones took seconds each).
type limitedCase struct {
	Seed    uint64        `json:"seed"`
	Options RandomOptions `json:"options"`
	Cost    float64       `json:"cost"`
}

// TestLimitedPlansNoWorse holds the rate-limited planner to the costs it
// reached before on 60 instances of 10 to 100 sites (every RTT model; loose,
// tight and overloaded rate limits; capacities, minimums and unknown RTTs),
// recorded in testdata/limited-plans-before.json.
func TestLimitedPlansNoWorse(t *testing.T) {
	data, err := os.ReadFile("testdata/limited-plans-before.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []limitedCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 50 {
		t.Fatalf("%d recorded instances, want at least 50", len(cases))
	}
	better := 0
	for k, c := range cases {
		p := RandomProblem(rand.New(rand.NewPCG(c.Seed, 5)), c.Options)
		x, err := Plan(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		got := p.Cost(x)
		if got > c.Cost*(1+1e-9)+1e-12 {
			t.Errorf("instance %d (%d sites, %d replicas): cost %v, before %v", k, c.Options.Sites, c.Options.Replicas, got, c.Cost)
		}
		if got < c.Cost*(1-1e-9) {
			better++
		}
	}
	t.Logf("%d of %d instances cost less than before", better, len(cases))
}
