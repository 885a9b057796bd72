package placement

import (
	"math"
	"math/rand"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// matrixOf builds a symmetric RTT matrix over sites from pair RTTs; pairs
// not given are unknown.
func matrixOf(sites []string, pairs map[[2]string]float64) [][]float64 {
	m := make([][]float64, len(sites))
	for i, a := range sites {
		m[i] = make([]float64, len(sites))
		for j, b := range sites {
			v, ok := staticRTT(pairs).RTT(a, b)
			if !ok {
				v = math.Inf(1)
			}
			m[i][j] = v
		}
	}
	return m
}

func TestLayersNamed(t *testing.T) {
	sites := []string{"a", "b", "c", "d", "e"}
	rtt := matrixOf(sites, map[[2]string]float64{
		{"a", "b"}: 10, {"a", "c"}: 25, {"b", "c"}: 20,
		{"a", "d"}: 70, {"b", "d"}: 60, {"c", "d"}: 50,
		// e is 12ms from a, but its RTT to the others is unknown: it stays alone.
		{"a", "e"}: 12,
	})
	ls := NewLayers(sites, rtt, []float64{80, 30, 15})
	want := map[string][][]string{
		"15ms": {{"a", "b"}, {"c"}, {"d"}, {"e"}},
		"30ms": {{"a", "b", "c"}, {"d"}, {"e"}},
		"80ms": {{"a", "b", "c", "d"}, {"e"}},
	}
	if diff := cmp.Diff(want, ls.Named()); diff != "" {
		t.Fatalf("layers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]float64{15, 30, 80}, ls.Delays()); diff != "" {
		t.Fatalf("delays (-want +got):\n%s", diff)
	}
}

// randomMatrix is n sites on a plane, RTT the distance, with a share of
// pairs unknown and a little asymmetry.
func randomMatrix(r *rand.Rand, n int, unknown float64) ([]string, [][]float64) {
	sites := make([]string, n)
	xs, ys := make([]float64, n), make([]float64, n)
	for i := range sites {
		sites[i] = "s" + strconv.Itoa(i)
		xs[i], ys[i] = r.Float64()*100, r.Float64()*100
	}
	m := make([][]float64, n)
	for i := range m {
		m[i] = make([]float64, n)
	}
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			d := math.Hypot(xs[i]-xs[j], ys[i]-ys[j])
			m[i][j], m[j][i] = d, d+r.Float64()*2
			if r.Float64() < unknown {
				m[i][j] = math.Inf(1)
			}
		}
	}
	return sites, m
}

// TestLayersProperties checks on random topologies that each layer's
// clusters partition the sites, that every pair inside a cluster is known
// and within the delay both ways, that no two clusters could still merge,
// that each cluster contains whole clusters of the layer below, and that
// Within is the RTT compared with the delay.
func TestLayersProperties(t *testing.T) {
	r := rand.New(rand.NewSource(20))
	for round := 0; round < 50; round++ {
		n := 1 + r.Intn(40)
		sites, m := randomMatrix(r, n, r.Float64()*0.3)
		delays := []float64{r.Float64() * 20, 20 + r.Float64()*30, 50 + r.Float64()*100}
		ls := NewLayers(sites, m, delays)
		var below *Layer
		for _, d := range ls.Delays() {
			l, ok := ls.Layer(d)
			if !ok {
				t.Fatalf("no layer %v", d)
			}
			of := make([]int, n)
			for i := range of {
				of[i] = -1
			}
			for ci, c := range l.Clusters {
				for _, i := range c {
					if of[i] != -1 {
						t.Fatalf("round %d layer %v: site %d in two clusters", round, d, i)
					}
					of[i] = ci
					for _, j := range c {
						if i != j && math.Max(m[i][j], m[j][i]) > d {
							t.Fatalf("round %d layer %v: %d and %d share a cluster at %v", round, d, i, j, math.Max(m[i][j], m[j][i]))
						}
					}
				}
			}
			for i, c := range of {
				if c == -1 {
					t.Fatalf("round %d layer %v: site %d in no cluster", round, d, i)
				}
			}
			for x := range l.Clusters {
				for y := x + 1; y < len(l.Clusters); y++ {
					worst := 0.0
					for _, i := range l.Clusters[x] {
						for _, j := range l.Clusters[y] {
							worst = math.Max(worst, math.Max(m[i][j], m[j][i]))
						}
					}
					if worst <= d {
						t.Fatalf("round %d layer %v: clusters %v and %v could merge", round, d, l.Clusters[x], l.Clusters[y])
					}
				}
			}
			if below != nil {
				for _, c := range below.Clusters {
					for _, i := range c {
						if of[i] != of[c[0]] {
							t.Fatalf("round %d layer %v splits cluster %v of layer %v", round, d, c, below.DelayMs)
						}
					}
				}
			}
			for i := 0; i < n; i++ {
				for j := 0; j < n; j++ {
					if l.Within(i, j) != (m[i][j] <= d) {
						t.Fatalf("Within(%d, %d) = %v at RTT %v, delay %v", i, j, l.Within(i, j), m[i][j], d)
					}
				}
			}
			below = l
		}
	}
}

func TestLayersChanged(t *testing.T) {
	sites := []string{"a", "b"}
	ls := NewLayers(sites, matrixOf(sites, map[[2]string]float64{{"a", "b"}: 10}), []float64{20})
	tests := []struct {
		name  string
		sites []string
		pairs map[[2]string]float64
		want  bool
	}{
		{"same", sites, map[[2]string]float64{{"a", "b"}: 10}, false},
		{"within tolerance", sites, map[[2]string]float64{{"a", "b"}: 10.9}, false},
		{"beyond tolerance", sites, map[[2]string]float64{{"a", "b"}: 11.1}, true},
		{"became unknown", sites, nil, true},
		{"new site", []string{"a", "b", "c"}, map[[2]string]float64{{"a", "b"}: 10}, true},
	}
	for _, tt := range tests {
		if got := ls.Changed(tt.sites, matrixOf(tt.sites, tt.pairs), 1); got != tt.want {
			t.Errorf("%s: Changed = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestParseDelayLayers(t *testing.T) {
	got, err := ParseDelayLayers("80ms, 30ms,30,0.5,1s")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]float64{0.5, 30, 80, 1000}, got); diff != "" {
		t.Fatalf("delays (-want +got):\n%s", diff)
	}
	for in, want := range map[string]string{
		"fast": `delay layer "fast" is not a delay (want e.g. 30ms or 30)`,
		"-3ms": `delay layer "-3ms" is negative (want at least 0ms)`,
		"NaN":  `delay layer "NaN" is not a delay (want e.g. 30ms or 30)`,
		"2m":   `delay layer "2m" is above the 60000 ms limit`,
	} {
		if _, err := ParseDelayLayers(in); err == nil || err.Error() != want {
			t.Errorf("ParseDelayLayers(%q) = %v; want %q", in, err, want)
		}
	}
	if got := FormatDelay(30); got != "30ms" {
		t.Errorf("FormatDelay(30) = %q", got)
	}
}
