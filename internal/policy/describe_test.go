package policy

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ning-edge/ning/internal/placement"
)

var inf = math.Inf(1)

// threeSites: traffic 100 at a and 200 at b, none at c; a-b 10 ms, a-c 5 ms,
// b-c unknown.
func threeSites(perReplicaRPS float64) *placement.Problem {
	return Problem([]string{"a", "b", "c"}, [][]float64{
		{0, 10, 5},
		{10, 0, inf},
		{5, inf, 0},
	}, map[string]float64{"a": 100, "b": 200}, perReplicaRPS)
}

// islands: 100 req/s at each of three sites, no RTT between any two.
func islands() *placement.Problem {
	return Problem([]string{"a", "b", "c"}, [][]float64{
		{0, inf, inf},
		{inf, 0, inf},
		{inf, inf, 0},
	}, map[string]float64{"a": 100, "b": 100, "c": 100}, 0)
}

func TestDescribeGain(t *testing.T) {
	tests := []struct {
		name    string
		p       *placement.Problem
		current placement.Placement
		site    int
		share   float64
		want    string
	}{
		{"first replica, RTT known", threeSites(0), placement.Placement{0, 0, 0}, 0, 300,
			"first replica: serves all 300 req/s at a weighted mean RTT of 6.67 ms"},
		{"first replica, some traffic at an unknown RTT", threeSites(0), placement.Placement{0, 0, 0}, 2, 300,
			"first replica: serves all 300 req/s; RTT unknown from 200 req/s"},
		{"first replica, no RTT at all", islands(), placement.Placement{0, 0, 0}, 1, 300,
			"first replica: serves all 300 req/s; RTT unknown from 200 req/s"},
		{"from unknown to known", threeSites(0), placement.Placement{0, 0, 1}, 1, 200,
			"brings the traffic-weighted mean RTT from unknown to 1.67 ms (all traffic now reaches a replica at a known RTT), 200 req/s per replica"},
		{"known, lower", threeSites(0), placement.Placement{1, 0, 0}, 1, 200,
			"lowers the traffic-weighted mean RTT by 6.67 ms (6.67 → 0.00 ms), 200 req/s per replica"},
		{"known, no change", threeSites(0), placement.Placement{1, 1, 0}, 0, 50,
			"leaves the traffic-weighted mean RTT at 0.00 ms, 50 req/s per replica"},
		{"unknown, more traffic reached", islands(), placement.Placement{1, 0, 0}, 1, 100,
			"brings 100 more req/s to a replica at a known RTT; RTT unknown from 100 req/s, 100 req/s per replica"},
		{"unknown, nothing reached", islands(), placement.Placement{1, 0, 0}, 0, 50,
			"RTT unknown from 200 req/s, 50 req/s per replica"},
		{"per-replica limit: the overflow goes over an unknown pair", threeSites(60), placement.Placement{0, 1, 1}, 2, 12.25,
			"RTT unknown, 12.3 req/s per replica"},
		{"no traffic", Problem([]string{"a"}, [][]float64{{0}}, nil, 0), placement.Placement{0}, 0, 0,
			"no traffic to serve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, DescribeGain(tt.p, tt.current, tt.site, tt.share)); diff != "" {
				t.Errorf("DescribeGain (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNoPenaltyReachesAPerson describes every gain and move of every
// placement of up to three replicas of both problems, with and without a
// per-replica rate: no text may hold placement's unknown-RTT penalty, or a
// number near it.
func TestNoPenaltyReachesAPerson(t *testing.T) {
	penalty := strconv.FormatFloat(placement.UnknownRTTPenaltyMs, 'f', -1, 64)
	for _, p := range []*placement.Problem{threeSites(0), threeSites(60), islands()} {
		for n := range 27 {
			x := placement.Placement{n % 3, n / 3 % 3, n / 9}
			var texts []string
			texts = append(texts, FormatMeanRTT(p, x), LogMeanRTT(p, x).LogValue().String())
			for j := range x {
				texts = append(texts, DescribeGain(p, x, j, 1))
				for k := range x {
					if x[j] > 0 && k != j {
						texts = append(texts, DescribeMove(p, x, j, k, placement.Placement{1, 1, 1}))
					}
				}
			}
			for _, s := range texts {
				if strings.Contains(s, penalty) || strings.Contains(s, "9999") || strings.Contains(s, "e+0") {
					t.Errorf("placement %v: %q shows the unknown-RTT penalty", x, s)
				}
			}
		}
	}
}

func TestMeanRTT(t *testing.T) {
	type result struct {
		Ms    float64
		Known bool
	}
	tests := []struct {
		name string
		p    *placement.Problem
		x    placement.Placement
		want result
	}{
		{"no replica", threeSites(0), placement.Placement{0, 0, 0}, result{}},
		{"all traffic at a known RTT", threeSites(0), placement.Placement{1, 0, 0}, result{200 * 10.0 / 300, true}},
		{"b's traffic reaches no replica", threeSites(0), placement.Placement{0, 0, 1}, result{}},
		{"enough room at known RTTs", threeSites(200), placement.Placement{0, 1, 1}, result{100 * 5.0 / 300, true}},
		{"overflow over an unknown pair", threeSites(60), placement.Placement{0, 1, 1}, result{}},
		{"no traffic", Problem([]string{"a"}, [][]float64{{0}}, nil, 0), placement.Placement{1}, result{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, known := MeanRTT(tt.p, tt.x)
			if diff := cmp.Diff(tt.want, result{ms, known}, cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-9 })); diff != "" {
				t.Errorf("MeanRTT (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDescribeMove(t *testing.T) {
	tests := []struct {
		name     string
		p        *placement.Problem
		current  placement.Placement
		from, to int
		plan     placement.Placement
		want     string
	}{
		{"from unknown", threeSites(0), placement.Placement{0, 0, 2}, 2, 1, placement.Placement{1, 1, 0},
			"weighted mean RTT unknown now, 1.67 ms after this move, 0.00 ms planned"},
		{"known throughout", threeSites(0), placement.Placement{1, 0, 1}, 2, 1, placement.Placement{1, 1, 0},
			"weighted mean RTT 6.67 ms now, 0.00 ms after this move, 0.00 ms planned (100% better)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, DescribeMove(tt.p, tt.current, tt.from, tt.to, tt.plan)); diff != "" {
				t.Errorf("DescribeMove (-want +got):\n%s", diff)
			}
		})
	}
}
