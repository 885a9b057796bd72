package policy

import (
	"context"
	"math"
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

// TestWhyBehindNeverShowsThePenalty: from no replica, and with a site whose
// RTTs are unknown, the gains hold placement's unknown-RTT penalty; the
// words comparing two sites never do.
func TestWhyBehindNeverShowsThePenalty(t *testing.T) {
	inf := math.Inf(1)
	p := Problem([]string{"a", "b", "c"}, [][]float64{{0, 5, inf}, {5, 0, inf}, {inf, inf, 0}},
		map[string]float64{"a": 100, "b": 20}, 0)
	for _, tt := range []struct {
		name    string
		current placement.Placement
		a, b    int
		want    string
	}{
		{"first replica", placement.Placement{0, 0, 0}, 0, 1,
			"with one more replica in b the traffic-weighted mean RTT would be 4.17 ms, with one in a 0.83 ms"},
		{"an unknown site", placement.Placement{0, 0, 0}, 0, 2,
			"one more replica in c leaves traffic at an unknown RTT (RTT unknown from 120 req/s), one in a does not"},
		{"a second replica", placement.Placement{1, 0, 0}, 1, 2,
			"with one more replica in c the traffic-weighted mean RTT would be 0.83 ms, with one in b 0.00 ms"},
		{"by traffic per replica", placement.Placement{1, 1, 0}, 0, 1,
			"no site lowers the traffic-weighted mean RTT; a replica in b would serve 10 req/s, in a 50 req/s"},
		{"a tie", placement.Placement{1, 1, 0}, 0, 0,
			"it ties with a on TrafficLatency (same gain, same replicas): the other score plugins and the node order decide"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Rank(context.Background(), p, tt.current)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.WhyBehind(p, tt.current, tt.a, tt.b); got != tt.want {
				t.Errorf("WhyBehind = %q\nwant        %q", got, tt.want)
			}
		})
	}
}
