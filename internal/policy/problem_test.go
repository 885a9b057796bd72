package policy

import (
	"testing"

	"github.com/ning-edge/ning/internal/placement"
)

func TestRawScoresOrderSitesAsThePlanner(t *testing.T) {
	tests := []struct {
		name    string
		gains   placement.Gains
		current placement.Placement
		order   []int // sites from best to worst
	}{
		{"by gain", placement.Gains{Gain: []float64{1000, 1010.5, 1020}, Share: []float64{9, 9, 9}}, placement.Placement{0, 0, 0}, []int{2, 1, 0}},
		{"no gain anywhere: by share", placement.Gains{Gain: []float64{0, 0, 0}, Share: []float64{50, 5, 2.5}}, placement.Placement{1, 1, 1}, []int{0, 1, 2}},
		{"tie: fewer replicas first", placement.Gains{Gain: []float64{0, 0}, Share: []float64{10, 10}}, placement.Placement{2, 1}, []int{1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := RawScores(tt.gains, tt.current)
			for k := 1; k < len(tt.order); k++ {
				if raw[tt.order[k-1]] <= raw[tt.order[k]] {
					t.Fatalf("raw = %v: site %d must rank above site %d", raw, tt.order[k-1], tt.order[k])
				}
			}
			// The planner's own order agrees.
			for k := 1; k < len(tt.order); k++ {
				if !tt.gains.Better(tt.current, tt.order[k-1], tt.order[k]) {
					t.Fatalf("Gains.Better disagrees on %d before %d", tt.order[k-1], tt.order[k])
				}
			}
		})
	}
}
