package placement

import (
	"container/heap"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MaxDelayLayers bounds how many delay layers one Layers holds: the
// configured ones plus one per distinct delay_<from> value seen on pods.
const MaxDelayLayers = 64

// Layer is seed 002's delay layer: the sites grouped for one delay into
// clusters in which every pair is within DelayMs of each other in both
// directions (cliques of the graph "RTT <= DelayMs"). An unknown RTT never
// joins two sites. The clusters partition the sites.
type Layer struct {
	DelayMs float64
	// Clusters lists each cluster's site indices, ascending; the clusters are
	// ordered by their first site.
	Clusters [][]int
	// within[i] holds the sites j with RTT(i, j) <= DelayMs: the feasible set
	// of a constraint from site i with this delay.
	within []bitset
}

type bitset []uint64

func newBitset(n int) bitset                    { return make(bitset, (n+63)/64) }
func (b bitset) set(i int)                      { b[i/64] |= 1 << (i % 64) }
func (b bitset) has(i int) bool                 { return b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) clear(i int)                    { b[i/64] &^= 1 << (i % 64) }
func linkage(rtt [][]float64, i, j int) float64 { return math.Max(rtt[i][j], rtt[j][i]) }

// BuildLayer clusters the sites of rtt (RTT[i][j] from site i to site j in
// ms, +Inf unknown) for delayMs, agglomeratively from below's clusters (nil:
// from single sites), complete-linkage style: the two clusters whose largest
// pairwise RTT is smallest merge first, while it is at most delayMs. Ties go
// to the lower site indices, so the result is deterministic. below must have
// a delay of at most delayMs.
func BuildLayer(rtt [][]float64, delayMs float64, below *Layer) *Layer {
	n := len(rtt)
	var start [][]int
	if below != nil {
		for _, c := range below.Clusters {
			start = append(start, append([]int(nil), c...))
		}
	} else {
		for i := 0; i < n; i++ {
			start = append(start, []int{i})
		}
	}
	k := len(start)
	// d[a][b] is the complete linkage between start clusters a and b.
	d := make([][]float64, k)
	for a := range d {
		d[a] = make([]float64, k)
	}
	h := &pairHeap{}
	for a := 0; a < k; a++ {
		for b := a + 1; b < k; b++ {
			l := 0.0
			for _, i := range start[a] {
				for _, j := range start[b] {
					l = math.Max(l, linkage(rtt, i, j))
				}
			}
			d[a][b], d[b][a] = l, l
			if l <= delayMs {
				*h = append(*h, pair{l, a, b})
			}
		}
	}
	heap.Init(h)
	alive := make([]bool, k)
	for a := range alive {
		alive[a] = true
	}
	for h.Len() > 0 {
		p := heap.Pop(h).(pair)
		a, b := p.a, p.b
		if !alive[a] || !alive[b] || d[a][b] != p.l {
			continue // stale: a cluster merged since
		}
		start[a] = append(start[a], start[b]...)
		start[b] = nil
		alive[b] = false
		for c := 0; c < k; c++ {
			if !alive[c] || c == a {
				continue
			}
			l := math.Max(d[a][c], d[b][c])
			d[a][c], d[c][a] = l, l
			if l <= delayMs {
				x, y := a, c
				if y < x {
					x, y = y, x
				}
				heap.Push(h, pair{l, x, y})
			}
		}
	}
	l := &Layer{DelayMs: delayMs, within: make([]bitset, n)}
	for a, c := range start {
		if alive[a] {
			sort.Ints(c)
			l.Clusters = append(l.Clusters, c)
		}
	}
	sort.Slice(l.Clusters, func(x, y int) bool { return l.Clusters[x][0] < l.Clusters[y][0] })
	for i := 0; i < n; i++ {
		l.within[i] = newBitset(n)
		for j := 0; j < n; j++ {
			if rtt[i][j] <= delayMs {
				l.within[i].set(j)
			}
		}
	}
	return l
}

type pair struct {
	l    float64
	a, b int
}

type pairHeap []pair

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(x, y int) bool {
	if h[x].l != h[y].l {
		return h[x].l < h[y].l
	}
	if h[x].a != h[y].a {
		return h[x].a < h[y].a
	}
	return h[x].b < h[y].b
}
func (h pairHeap) Swap(x, y int) { h[x], h[y] = h[y], h[x] }
func (h *pairHeap) Push(v any)   { *h = append(*h, v.(pair)) }
func (h *pairHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}

// Layers is a set of delay layers over one snapshot of the RTTs between
// sites. It is immutable: Add and Update return a new set.
type Layers struct {
	sites []string
	index map[string]int
	// rtt is the snapshot: the feasible sets (Layer.Within) and RTT answer
	// from it exactly.
	rtt [][]float64
	// base is the snapshot the clusters were built from: Update rebuilds
	// them when rtt moves more than a tolerance away from it.
	base   [][]float64
	layers []*Layer // by DelayMs, ascending
}

// NewLayers clusters sites (RTT indexed like them, +Inf unknown; neither is
// changed afterwards) for each delay, each layer built from the one below.
// Delays beyond MaxDelayLayers distinct values are left out.
func NewLayers(sites []string, rtt [][]float64, delaysMs []float64) *Layers {
	ls := &Layers{sites: sites, index: make(map[string]int, len(sites)), rtt: rtt, base: rtt}
	for i, s := range sites {
		ls.index[s] = i
	}
	ds := append([]float64(nil), delaysMs...)
	sort.Float64s(ds)
	for _, d := range ds {
		ls = ls.Add(d)
	}
	return ls
}

// Sites returns the snapshot's sites; the slice must not be changed.
func (ls *Layers) Sites() []string { return ls.sites }

// Delays returns the layers' delays, ascending.
func (ls *Layers) Delays() []float64 {
	out := make([]float64, len(ls.layers))
	for i, l := range ls.layers {
		out[i] = l.DelayMs
	}
	return out
}

// Layer returns the layer for delayMs.
func (ls *Layers) Layer(delayMs float64) (*Layer, bool) {
	i := sort.Search(len(ls.layers), func(i int) bool { return ls.layers[i].DelayMs >= delayMs })
	if i < len(ls.layers) && ls.layers[i].DelayMs == delayMs {
		return ls.layers[i], true
	}
	return nil, false
}

// Add returns the set with a layer for delayMs, built from the layer below
// it; ls itself when it has that layer already or holds MaxDelayLayers.
func (ls *Layers) Add(delayMs float64) *Layers {
	i := sort.Search(len(ls.layers), func(i int) bool { return ls.layers[i].DelayMs >= delayMs })
	if (i < len(ls.layers) && ls.layers[i].DelayMs == delayMs) || len(ls.layers) >= MaxDelayLayers {
		return ls
	}
	var below *Layer
	if i > 0 {
		below = ls.layers[i-1]
	}
	out := *ls
	out.layers = make([]*Layer, 0, len(ls.layers)+1)
	out.layers = append(out.layers, ls.layers[:i]...)
	out.layers = append(out.layers, BuildLayer(ls.rtt, delayMs, below))
	out.layers = append(out.layers, ls.layers[i:]...)
	return &out
}

// Index returns a site's index in the snapshot.
func (ls *Layers) Index(site string) (int, bool) {
	i, ok := ls.index[site]
	return i, ok
}

// Within reports whether the RTT from site index from to site index to is
// known and at most the layer's delay: a lookup in the layer, not a scan.
func (l *Layer) Within(from, to int) bool { return l.within[from].has(to) }

// RTT is the snapshot's RTT; ok is false when it is unknown or a site is not
// in the snapshot. Layers is an RTTLookup.
func (ls *Layers) RTT(from, to string) (float64, bool) {
	i, ok := ls.index[from]
	if !ok {
		return 0, false
	}
	j, ok := ls.index[to]
	if !ok || math.IsInf(ls.rtt[i][j], 1) {
		return 0, false
	}
	return ls.rtt[i][j], true
}

// Changed reports whether the clusters must be rebuilt for sites and rtt
// (as NewLayers takes them): the sites differ, an RTT became known or
// unknown, or one moved by more than toleranceMs from the RTTs the clusters
// were built from.
func (ls *Layers) Changed(sites []string, rtt [][]float64, toleranceMs float64) bool {
	if len(sites) != len(ls.sites) {
		return true
	}
	for i, s := range sites {
		if ls.sites[i] != s {
			return true
		}
	}
	for i := range rtt {
		for j, v := range rtt[i] {
			old := ls.base[i][j]
			if math.IsInf(v, 1) != math.IsInf(old, 1) || (!math.IsInf(v, 1) && math.Abs(v-old) > toleranceMs) {
				return true
			}
		}
	}
	return false
}

// Update returns the layers for sites and rtt: rebuilt (NewLayers) when
// Changed says so; otherwise with the clusters kept and the snapshot and the
// feasible sets moved to rtt exactly, so that verdicts never rest on an old
// RTT while the clusters are rebuilt only past the tolerance. It returns ls
// when nothing changed.
func (ls *Layers) Update(sites []string, rtt [][]float64, toleranceMs float64) *Layers {
	if ls.Changed(sites, rtt, toleranceMs) {
		return NewLayers(sites, rtt, ls.Delays())
	}
	var out *Layers
	for i := range rtt {
		for j, v := range rtt[i] {
			old := ls.rtt[i][j]
			if v == old {
				continue
			}
			if out == nil {
				c := *ls
				c.layers = append([]*Layer(nil), ls.layers...)
				out = &c
			}
			for k, l := range out.layers {
				if (old <= l.DelayMs) == (v <= l.DelayMs) {
					continue
				}
				if l == ls.layers[k] { // copy on first write
					nl := *l
					nl.within = append([]bitset(nil), l.within...)
					l = &nl
					out.layers[k] = l
				}
				row := append(bitset(nil), l.within[i]...)
				if v <= l.DelayMs {
					row.set(j)
				} else {
					row.clear(j)
				}
				l.within[i] = row
			}
		}
	}
	if out == nil {
		return ls
	}
	out.rtt = rtt
	return out
}

// Named returns the layers' clusters by site name, keyed by delay as
// FormatDelay writes it.
func (ls *Layers) Named() map[string][][]string {
	out := make(map[string][][]string, len(ls.layers))
	for _, l := range ls.layers {
		cs := make([][]string, len(l.Clusters))
		for i, c := range l.Clusters {
			for _, j := range c {
				cs[i] = append(cs[i], ls.sites[j])
			}
		}
		out[FormatDelay(l.DelayMs)] = cs
	}
	return out
}

// FormatZones writes a layer's clusters on one line: "[a b] [c]".
func FormatZones(clusters [][]string) string {
	zones := make([]string, len(clusters))
	for i, c := range clusters {
		zones[i] = "[" + strings.Join(c, " ") + "]"
	}
	return strings.Join(zones, " ")
}

// FormatDelay writes a delay in ms as a duration: 30 as "30ms", 0.5 as "500µs".
func FormatDelay(ms float64) string {
	return time.Duration(math.Round(ms * float64(time.Millisecond))).String()
}

// ParseDelayLayers reads a comma-separated list of delays, each a Go duration
// ("30ms", "1.5s") or a number of milliseconds ("30"), as --delay-layers and
// the plugin args take it. An empty string is no layers.
func ParseDelayLayers(s string) ([]float64, error) {
	var out []float64
	seen := map[float64]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		ms, err := strconv.ParseFloat(f, 64)
		if err != nil {
			d, derr := time.ParseDuration(f)
			if derr != nil {
				return nil, fmt.Errorf("delay layer %q is not a delay (want e.g. 30ms or 30)", f)
			}
			ms = float64(d) / float64(time.Millisecond)
		}
		switch {
		case math.IsNaN(ms) || math.IsInf(ms, 0):
			return nil, fmt.Errorf("delay layer %q is not a delay (want e.g. 30ms or 30)", f)
		case ms < 0:
			return nil, fmt.Errorf("delay layer %q is negative (want at least 0ms)", f)
		case ms > MaxDelayMs:
			return nil, fmt.Errorf("delay layer %q is above the %v ms limit", f, MaxDelayMs)
		}
		if !seen[ms] {
			seen[ms] = true
			out = append(out, ms)
		}
	}
	if len(out) > MaxDelayLayers {
		return nil, fmt.Errorf("%d delay layers: at most %d", len(out), MaxDelayLayers)
	}
	sort.Float64s(out)
	return out, nil
}
