package trafficlatency

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/kubernetes/pkg/scheduler/framework"

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
			raw := rawScores(tt.gains, tt.current)
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

func TestNormalizeScore(t *testing.T) {
	p := &Plugin{}
	scores := []struct{ in, want int64 }{{5000, 0}, {7500, 50}, {10000, 100}}
	var list []framework.NodeScore
	for i, s := range scores {
		list = append(list, framework.NodeScore{Name: string(rune('a' + i)), Score: s.in})
	}
	if st := p.NormalizeScore(context.Background(), framework.NewCycleState(), nil, list); st != nil {
		t.Fatal(st)
	}
	var got, want []int64
	for i, s := range scores {
		got, want = append(got, list[i].Score), append(want, s.want)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}
