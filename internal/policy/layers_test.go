package policy

import (
	"math"
	"math/rand"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/topology"
)

// randomStore is a real topology store holding n sites on a plane, the RTT
// their distance rounded to whole ms (so that constraints land exactly on
// RTTs), with a share of pairs unmeasured and some one direction only, or
// differing by direction.
func randomStore(tb testing.TB, r *rand.Rand, n int, unknown float64) (*topology.Store, []string) {
	tb.Helper()
	store := topology.NewStore(topology.Config{}, clocktesting.NewFakeClock(time.Unix(1e9, 0)))
	sites := make([]string, n)
	xs, ys := make([]float64, n), make([]float64, n)
	for i := range sites {
		sites[i] = "s" + strconv.Itoa(i)
		xs[i], ys[i] = r.Float64()*100, r.Float64()*100
	}
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			if r.Float64() < unknown {
				continue
			}
			d := math.Round(math.Hypot(xs[i]-xs[j], ys[i]-ys[j]))
			if err := store.SetStaticRTT(sites[i], sites[j], d); err != nil {
				tb.Fatal(err)
			}
			if r.Intn(4) == 0 {
				if err := store.SetStaticRTT(sites[j], sites[i], d+float64(r.Intn(5))); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
	return store, sites
}

// TestLayeredEqualsScan checks, on many random topologies, that the verdict
// at every site through the delay layers is the one today's scan
// (JudgeSites) gives: one to three constraints from random sites (now and
// then one outside the layers), delays on and between RTTs, layers
// configured or only asked for by the pod, both unknown-RTT policies, and a
// site the layers do not hold.
func TestLayeredEqualsScan(t *testing.T) {
	r := rand.New(rand.NewSource(20))
	now := time.Unix(1e9, 0)
	for round := 0; round < 300; round++ {
		n := 1 + r.Intn(60)
		store, sites := randomStore(t, r, n, r.Float64()*0.4)
		var configured []float64
		for k := r.Intn(3); k > 0; k-- {
			configured = append(configured, float64(r.Intn(100)))
		}
		tol := r.Intn(5)
		cache := NewLayerCache(configured, float64(tol))
		var cs []placement.Resolved
		for k := 1 + r.Intn(3); k > 0; k-- {
			from := sites[r.Intn(n)]
			if r.Intn(10) == 0 {
				from = "elsewhere"
			}
			ms := float64(r.Intn(120))
			if r.Intn(2) == 0 {
				ms += 0.5
			}
			cs = append(cs, placement.Resolved{Constraint: placement.Constraint{Label: "delay_" + from, From: from, MaxMs: ms}, FromSite: from})
		}
		p := placement.FailClosed
		if r.Intn(2) == 0 {
			p = placement.FailOpen
		}
		for step := 0; step < 3; step++ {
			if step > 0 {
				// Move some RTTs: in step 1 within the tolerance (the
				// clusters stay), in step 2 some beyond it (they are
				// rebuilt). The verdicts must follow either way.
				most := tol
				if step == 2 {
					most = 3
				}
				for k := r.Intn(2 * n); k > 0; k-- {
					a, b := sites[r.Intn(n)], sites[r.Intn(n)]
					if a == b {
						continue
					}
					old, ok := store.RTT(a, b)
					if !ok {
						old = 50
					}
					if err := store.SetStaticRTT(a, b, math.Max(0, math.Round(old+float64(r.Intn(2*most+1)-most)))); err != nil {
						t.Fatal(err)
					}
				}
			}
			checkLayered(t, round, cache, store, sites, cs, p, now)
		}
	}
}

func checkLayered(t *testing.T, round int, cache *LayerCache, store *topology.Store, sites []string, cs []placement.Resolved, p placement.UnknownRTTPolicy, now time.Time) {
	t.Helper()
	n := len(sites)
	{
		ls := cache.Layers(now, func() []string { return sites }, store, Delays(cs))
		j := JudgeLayered(cs, ls, store, p)
		for _, site := range append(append([]string(nil), sites...), "elsewhere") {
			want := placement.CheckSite(cs, site, store, p)
			if diff := cmp.Diff(want, j.Verdict(site)); diff != "" {
				t.Fatalf("round %d, %d sites, constraints %v, %s, site %s (-scan +layers):\n%s", round, n, cs, p, site, diff)
			}
			// The lookup, not the fallback, must pass every site that
			// meets the constraints on known RTTs.
			if i, ok := ls.Index(site); ok && !j.scan && j.inside(i) != (want.OK && !want.Unknown) {
				t.Fatalf("round %d, constraints %v, site %s: in the layers' feasible sets = %v; verdict %+v", round, cs, site, j.inside(i), want)
			}
		}
		if diff := cmp.Diff(JudgeSites(cs, sites, store, p), j.Judgement(sites)); diff != "" {
			t.Fatalf("round %d: judgement (-scan +layers):\n%s", round, diff)
		}
	}
}

// TestLayerCacheTolerance checks that the clusters are rebuilt only when an
// RTT moves by more than the tolerance (or the sites change), while the
// feasible sets, and so the verdicts, follow every change at once; and that
// a delay a pod asks for becomes a layer.
func TestLayerCacheTolerance(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1e9, 0))
	store := topology.NewStore(topology.Config{}, clk)
	if err := store.SetStaticRTT("a", "b", 20); err != nil {
		t.Fatal(err)
	}
	sites := []string{"a", "b"}
	cache := NewLayerCache([]float64{20}, 1)
	cs := []placement.Resolved{{Constraint: placement.Constraint{Label: "delay_a", From: "a", MaxMs: 20}, FromSite: "a"}}
	get := func() (*placement.Layers, placement.Verdict) {
		ls := cache.Layers(clk.Now(), func() []string { return sites }, store, []float64{10})
		return ls, JudgeLayered(cs, ls, store, placement.FailClosed).Verdict("b")
	}
	ls, v := get()
	if diff := cmp.Diff([]float64{10, 20}, ls.Delays()); diff != "" {
		t.Fatalf("delays (-want +got):\n%s", diff)
	}
	together := map[string][][]string{"10ms": {{"a"}, {"b"}}, "20ms": {{"a", "b"}}}
	if diff := cmp.Diff(together, ls.Named()); diff != "" {
		t.Fatalf("layers (-want +got):\n%s", diff)
	}
	if !v.OK {
		t.Fatalf("b at 20ms from a: %+v", v)
	}
	if err := store.SetStaticRTT("a", "b", 20.9); err != nil {
		t.Fatal(err)
	}
	ls, v = get()
	if diff := cmp.Diff(together, ls.Named()); diff != "" {
		t.Fatalf("an RTT moved by 0.9 ms within a 1 ms tolerance rebuilt the clusters (-want +got):\n%s", diff)
	}
	if want := "delay_a 20ms: b is 20.9ms from a"; v.OK || v.Reason != want {
		t.Fatalf("b at 20.9ms from a: %+v; want reason %q", v, want)
	}
	if err := store.SetStaticRTT("a", "b", 21.5); err != nil {
		t.Fatal(err)
	}
	ls, _ = get()
	if diff := cmp.Diff(map[string][][]string{"10ms": {{"a"}, {"b"}}, "20ms": {{"a"}, {"b"}}}, ls.Named()); diff != "" {
		t.Fatalf("an RTT moved by 1.5 ms beyond a 1 ms tolerance (-want +got):\n%s", diff)
	}
	sites = []string{"a", "b", "c"}
	if ls, _ := get(); len(ls.Sites()) != 2 {
		t.Fatalf("the cache looked at the sites again before LayerRefresh with the RTTs unchanged: %v", ls.Sites())
	}
	clk.Step(LayerRefresh)
	if ls, _ := get(); len(ls.Sites()) != 3 {
		t.Fatalf("a new site did not rebuild the layers: %v", ls.Sites())
	}
}

// BenchmarkPreFilterDelay is the per-pod delay work of NetworkLatency's
// PreFilter at 50 and 500 sites: "layers" is what it does now (the cached
// layers, one lookup per constraint), "scan" what it did before (JudgeSites
// over every site).
func BenchmarkPreFilterDelay(b *testing.B) {
	for _, n := range []int{50, 500} {
		r := rand.New(rand.NewSource(int64(n)))
		store, sites := randomStore(b, r, n, 0.05)
		cs := []placement.Resolved{{Constraint: placement.Constraint{Label: "delay_s0", From: "s0", MaxMs: 30}, FromSite: "s0"}}
		now := time.Unix(1e9, 0)
		siteList := func() []string { return sites }
		b.Run("layers/sites="+strconv.Itoa(n), func(b *testing.B) {
			cache := NewLayerCache([]float64{30}, DefaultLayerToleranceMs)
			cache.Layers(now, siteList, store, nil)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ls := cache.Layers(now, siteList, store, Delays(cs))
				_ = JudgeLayered(cs, ls, store, placement.FailClosed)
			}
		})
		b.Run("scan/sites="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				_ = JudgeSites(cs, sites, store, placement.FailClosed)
			}
		})
	}
}
