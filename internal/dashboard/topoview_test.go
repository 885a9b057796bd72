package dashboard

import (
	"math"
	"testing"

	"k8s.io/utils/ptr"
)

// topoSnapshot has sites named as given, every RTT known from rtt (ms,
// symmetric, by index), traffic and replicas per site.
func topoSnapshot(names []string, rtt map[[2]int]float64, traffic []float64, replicas []int) Snapshot {
	s := Snapshot{}
	for i, n := range names {
		s.Sites = append(s.Sites, Site{Name: n, TrafficRPS: ptr.To(traffic[i]), Replicas: replicas[i]})
	}
	s.RTTMs = make([][]*float64, len(names))
	for i := range names {
		s.RTTMs[i] = make([]*float64, len(names))
		s.RTTMs[i][i] = ptr.To(0.0)
	}
	for k, v := range rtt {
		s.RTTMs[k[0]][k[1]], s.RTTMs[k[1]][k[0]] = ptr.To(v), ptr.To(v)
	}
	return s
}

// noOverlap fails when two sites' circles overlap or a site leaves the view.
func noOverlap(t *testing.T, v topoView) {
	t.Helper()
	for i, a := range v.Sites {
		if a.R <= 0 || a.X-a.R < 0 || a.X+a.R > float64(v.Width) || a.Y-a.R < 0 || a.Y+a.R > float64(v.Height) {
			t.Errorf("site %s at (%.1f, %.1f) r %.1f: not inside the %dx%d view", a.Name, a.X, a.Y, a.R, v.Width, v.Height)
		}
		for _, b := range v.Sites[i+1:] {
			if d := math.Hypot(a.X-b.X, a.Y-b.Y); d < a.R+b.R {
				t.Errorf("%s (r %.1f) and %s (r %.1f) overlap: centres %.1f px apart", a.Name, a.R, b.Name, b.R, d)
			}
		}
	}
}

// TestTopologyCirclesApart: two busy sites 0.01 ms apart, far from a third,
// are one point to MDS; their circles are drawn side by side, not on top
// of each other, and the far site stays far.
func TestTopologyCirclesApart(t *testing.T) {
	s := topoSnapshot([]string{"a", "b", "far"},
		map[[2]int]float64{{0, 1}: 0.01, {0, 2}: 80, {1, 2}: 80},
		[]float64{100, 90, 50}, []int{2, 3, 1})
	v := newTopoView(s, map[string]string{})
	if v.Err != "" {
		t.Fatal(v.Err)
	}
	noOverlap(t, v)
	a, b, far := v.Sites[0], v.Sites[1], v.Sites[2]
	if ab, af := math.Hypot(a.X-b.X, a.Y-b.Y), math.Hypot(a.X-far.X, a.Y-far.Y); ab >= af {
		t.Errorf("a-b %.1f px is not nearer than a-far %.1f px", ab, af)
	}
}

// TestTopologyCrowded: forty sites at 0 ms from one another, all at full
// traffic, still never overlap (the circles shrink when the view cannot
// hold them apart at their size).
func TestTopologyCrowded(t *testing.T) {
	var names []string
	rtt := map[[2]int]float64{}
	var traffic []float64
	var replicas []int
	for i := range 40 {
		names = append(names, string(rune('a'+i%26))+string(rune('a'+i/26)))
		traffic, replicas = append(traffic, 100), append(replicas, 1)
		for j := range i {
			rtt[[2]int{j, i}] = 0
		}
	}
	noOverlap(t, newTopoView(topoSnapshot(names, rtt, traffic, replicas), map[string]string{}))
}
