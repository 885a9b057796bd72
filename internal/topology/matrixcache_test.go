package topology

import (
	"fmt"
	"testing"
	"time"
)

// countingSource counts the matrices built from a real store.
type countingSource struct {
	*Store
	builds int
}

func (c *countingSource) Matrix(sites []string) [][]float64 {
	c.builds++
	return c.Store.Matrix(sites)
}

func TestMatrixCacheRebuildsOnlyForRTTChanges(t *testing.T) {
	s, _ := newTestStore()
	src := &countingSource{Store: s}
	if err := s.SetStaticRTT("a", "b", 10); err != nil {
		t.Fatal(err)
	}
	var c MatrixCache
	sites := []string{"a", "b"}
	step := func(name string, change func() error, wantBuilds int, wantAB float64) {
		t.Helper()
		if err := change(); err != nil {
			t.Fatal(err)
		}
		m := c.Matrix(src, sites)
		if src.builds != wantBuilds || m[0][1] != wantAB {
			t.Errorf("after %s: %d builds, a->b %v; want %d builds, a->b %v", name, src.builds, m[0][1], wantBuilds, wantAB)
		}
	}
	nothing := func() error { return nil }
	step("the first read", nothing, 1, 10)
	step("a second read", nothing, 1, 10)
	step("a load report", func() error { return s.ObserveLoad("a-1", Load{CPU: 0.5, Updated: t0}) }, 1, 10)
	step("a traffic report", func() error { return s.SetTraffic("a", 5, t0, false) }, 1, 10)
	step("an RTT measurement", func() error {
		return s.ObserveRTT(RTTSample{From: "a", To: "b", MeanMs: 20, Sent: 1, Received: 1, At: t0})
	}, 2, 20)
	step("a static RTT", func() error { return s.SetStaticRTT("b", "a", 30) }, 3, 20)
	sites = []string{"a", "b", "c"}
	step("another site list", nothing, 4, 20)
	c.built = time.Now().Add(-MatrixCacheMaxAge) // RTTs also go stale with time
	step("a second later", nothing, 5, 20)
}

// BenchmarkMatrixUnderLoadReports compares, in one run, a matrix built for
// every pod (baseline) with MatrixCache, while nodes report their load
// between pods as they do in a live cluster: 100 sites.
func BenchmarkMatrixUnderLoadReports(b *testing.B) {
	s, _ := newTestStore()
	var sites []string
	for i := range 100 {
		sites = append(sites, fmt.Sprintf("s%03d", i))
	}
	for i, a := range sites {
		for j, c := range sites {
			if i != j {
				if err := s.SetStaticRTT(a, c, float64(1+(i*7+j*3)%50)); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	report := func(i int) {
		if err := s.ObserveLoad(fmt.Sprintf("n%d", i%1000), Load{CPU: 0.5, Updated: t0}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("rebuild", func(b *testing.B) {
		i := 0
		for b.Loop() {
			report(i)
			_ = s.Matrix(sites)
			i++
		}
	})
	b.Run("cache", func(b *testing.B) {
		var c MatrixCache
		i := 0
		for b.Loop() {
			report(i)
			_ = c.Matrix(s, sites)
			i++
		}
	})
}
