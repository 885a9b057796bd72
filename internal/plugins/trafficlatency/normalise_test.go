package trafficlatency

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ning-edge/ning/internal/placement"
)

func TestNormalise(t *testing.T) {
	tests := []struct {
		name    string
		gains   placement.Gains
		current placement.Placement
		want    []int64
		best    int
	}{
		{"by gain, relative to the worst site",
			placement.Gains{Gain: []float64{1000, 1010, 1020}, Share: []float64{0, 0, 0}}, placement.Placement{0, 0, 0},
			[]int64{0, 50, 100}, 2},
		{"no gain anywhere: by share",
			placement.Gains{Gain: []float64{0, 0, 0}, Share: []float64{50, 5, 2.5}}, placement.Placement{1, 1, 1},
			[]int64{100, 5, 0}, 0},
		{"tie on gain and share: fewer replicas wins",
			placement.Gains{Gain: []float64{0, 0}, Share: []float64{10, 10}}, placement.Placement{2, 1},
			[]int64{0, 1}, 1},
		{"nothing to choose",
			placement.Gains{Gain: []float64{0, 0}, Share: []float64{0, 0}}, placement.Placement{0, 0},
			[]int64{0, 0}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, best := normalise(tt.gains, tt.current)
			if diff := cmp.Diff(tt.want, got); diff != "" || best != tt.best {
				t.Fatalf("best %d (want %d), scores (-want +got):\n%s", best, tt.best, diff)
			}
		})
	}
}
