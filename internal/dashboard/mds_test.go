package dashboard

import (
	"math"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
)

func distances(pts []Point) [][]float64 {
	d := make([][]float64, len(pts))
	for i, a := range pts {
		d[i] = make([]float64, len(pts))
		for j, b := range pts {
			d[i][j] = math.Hypot(a.X-b.X, a.Y-b.Y)
		}
	}
	return d
}

// TestClassicalMDSRecoversPlanarDistances: distances between points of a
// plane are reproduced exactly, whatever the rotation MDS picks.
func TestClassicalMDSRecoversPlanarDistances(t *testing.T) {
	for _, tt := range []struct {
		name string
		pts  []Point
	}{
		{"3-4-5 triangle", []Point{{0, 0}, {3, 0}, {0, 4}}},
		{"five sites", []Point{{0, 0}, {9, 1}, {4, -3}, {5, 5}, {-7, 2}}},
		{"on a line", []Point{{0, 0}, {1, 0}, {5, 0}, {6, 0}}},
		{"two", []Point{{0, 0}, {0, 14}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want := distances(tt.pts)
			got, err := ClassicalMDS(want)
			if err != nil {
				t.Fatal(err)
			}
			gd := distances(got)
			for i := range want {
				for j := range want {
					if math.Abs(gd[i][j]-want[i][j]) > 1e-9 {
						t.Errorf("distance %d-%d: %v laid out, want %v (points %v)", i, j, gd[i][j], want[i][j], got)
					}
				}
			}
			var cx, cy float64
			for _, p := range got {
				cx, cy = cx+p.X, cy+p.Y
			}
			if math.Abs(cx) > 1e-9 || math.Abs(cy) > 1e-9 {
				t.Errorf("not centred: sum %v, %v", cx, cy)
			}
		})
	}
}

// TestClassicalMDSNonEuclidean: RTTs that break the triangle inequality
// still give finite points, the two far sites still furthest apart.
func TestClassicalMDSNonEuclidean(t *testing.T) {
	d := [][]float64{
		{0, 1, 1, 10},
		{1, 0, 1, 1},
		{1, 1, 0, 1},
		{10, 1, 1, 0},
	}
	got, err := ClassicalMDS(d)
	if err != nil {
		t.Fatal(err)
	}
	gd := distances(got)
	for i := range gd {
		for j := range gd {
			if math.IsNaN(gd[i][j]) || math.IsInf(gd[i][j], 0) {
				t.Fatalf("points %v", got)
			}
			if i < j && (i != 0 || j != 3) && gd[i][j] >= gd[0][3] {
				t.Errorf("%d-%d at %v, not nearer than 0-3 at %v", i, j, gd[i][j], gd[0][3])
			}
		}
	}
}

func TestClassicalMDSErrors(t *testing.T) {
	for _, tt := range []struct {
		d    [][]float64
		want string
	}{
		{[][]float64{{0, 1}, {1}}, "mds: row 1 has 1 distances, want 2"},
		{[][]float64{{0, -1}, {1, 0}}, "mds: distance 0-1 is -1, want a finite number of 0 or more"},
		{[][]float64{{0, math.NaN()}, {1, 0}}, "mds: distance 0-1 is NaN"},
		{[][]float64{{0, math.Inf(1)}, {1, 0}}, "mds: distance 0-1 is +Inf"},
	} {
		if _, err := ClassicalMDS(tt.d); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ClassicalMDS(%v): %v, want %q", tt.d, err, tt.want)
		}
	}
}

// TestLayoutDistances: a pair measured one way takes that RTT, both ways
// their mean; an unmeasured pair its shortest known path, and a site
// nothing reaches 1.5 times the largest RTT.
func TestLayoutDistances(t *testing.T) {
	rtt := [][]*float64{
		{nil, ptr.To(2.0), nil, nil},
		{ptr.To(4.0), nil, ptr.To(5.0), nil},
		{nil, nil, nil, nil},
		{nil, nil, nil, nil},
	}
	d, known := layoutDistances(rtt)
	want := [][]float64{
		{0, 3, 8, 7.5},
		{3, 0, 5, 7.5},
		{8, 5, 0, 7.5},
		{7.5, 7.5, 7.5, 0},
	}
	wantKnown := [][]bool{
		{true, true, false, false},
		{true, true, true, false},
		{false, true, true, false},
		{false, false, false, true},
	}
	for i := range want {
		for j := range want {
			if d[i][j] != want[i][j] || known[i][j] != wantKnown[i][j] {
				t.Errorf("%d-%d: %v known %v, want %v known %v", i, j, d[i][j], known[i][j], want[i][j], wantKnown[i][j])
			}
		}
	}
}
