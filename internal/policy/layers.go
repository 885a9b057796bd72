package policy

import (
	"math"
	"sync"
	"time"

	"github.com/ning-edge/ning/internal/placement"
)

// DefaultLayerToleranceMs is how far an RTT may move before the delay layers
// are rebuilt, when nothing else is configured.
const DefaultLayerToleranceMs = 1.0

// LayerRefresh is how often a LayerCache looks at the RTTs again: they also
// go stale with time, which changes no version.
const LayerRefresh = time.Second

// matrixSource is an RTTLookup that builds a whole matrix at once under one
// lock, as *topology.Store does.
type matrixSource interface {
	Matrix(sites []string) [][]float64
}

// LayerCache keeps the delay layers (placement.Layers) of the sites: the
// configured delays and each distinct delay a pod has asked for. It looks at
// the sites and RTTs again when the RTTs' version changes (when the lookup
// has one, as *topology.Store does) and at least once per LayerRefresh, as
// topology.MatrixCache does. It rebuilds the clusters only when an RTT moved
// by more than the tolerance, became known or unknown, or the sites changed
// (placement.Layers.Update); the feasible sets the verdicts come from follow
// every change. It is safe for concurrent use.
type LayerCache struct {
	configured  []float64
	toleranceMs float64

	mu      sync.Mutex
	cur     *placement.Layers
	checked time.Time
	version uint64
}

// NewLayerCache returns a cache that always holds the layers for configured.
func NewLayerCache(configured []float64, toleranceMs float64) *LayerCache {
	return &LayerCache{configured: configured, toleranceMs: toleranceMs}
}

// Layers returns the current layers, with a layer for each delay in need
// (while there is room for it: placement.MaxDelayLayers). sites lists the
// sites; it and rtt are read only when the cache looks again.
func (c *LayerCache) Layers(now time.Time, sites func() []string, rtt placement.RTTLookup, need []float64) *placement.Layers {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, versioned := rttVersion(rtt)
	if c.cur == nil || (versioned && v != c.version) || now.Sub(c.checked) >= LayerRefresh || now.Before(c.checked) {
		s := sites()
		m := matrixOf(s, rtt)
		if c.cur == nil {
			c.cur = placement.NewLayers(s, m, c.configured)
		} else {
			c.cur = c.cur.Update(s, m, c.toleranceMs)
		}
		c.checked, c.version = now, v
	}
	for _, d := range need {
		c.cur = c.cur.Add(d)
	}
	return c.cur
}

// rttVersion is the version of rtt's RTTs when it has one, as
// *topology.Store does.
func rttVersion(rtt placement.RTTLookup) (uint64, bool) {
	if vs, ok := rtt.(interface{ RTTVersion() uint64 }); ok {
		return vs.RTTVersion(), true
	}
	return 0, false
}

func matrixOf(sites []string, rtt placement.RTTLookup) [][]float64 {
	if ms, ok := rtt.(matrixSource); ok {
		return ms.Matrix(sites)
	}
	m := make([][]float64, len(sites))
	for i, a := range sites {
		m[i] = make([]float64, len(sites))
		for j, b := range sites {
			v, ok := rtt.RTT(a, b)
			if !ok {
				v = math.Inf(1)
			}
			m[i][j] = v
		}
	}
	return m
}

// LayeredJudgement judges a pod's delay constraints through the delay
// layers: a site inside every constraint's feasible set (the layer for its
// delay, from its <from> site) passes by lookup; any other site is judged by
// placement.CheckSite on the layers' RTTs, which gives the reason. So the
// verdicts are JudgeSites' on the same RTTs, and building it costs a lookup
// per constraint, not a scan of the sites. A site, or a <from> site, that the
// layers do not hold is judged on the live RTTs, as JudgeSites would.
type LayeredJudgement struct {
	cs     []placement.Resolved
	ls     *placement.Layers
	live   placement.RTTLookup
	policy placement.UnknownRTTPolicy
	from   []int
	layer  []*placement.Layer
	// scan is true when some constraint has no layer or no <from> site in
	// it: every site is then judged by CheckSite.
	scan bool
}

// JudgeLayered prepares the judgement of cs; ls should hold a layer for each
// constraint's delay (LayerCache.Layers with those delays as need).
func JudgeLayered(cs []placement.Resolved, ls *placement.Layers, live placement.RTTLookup, p placement.UnknownRTTPolicy) *LayeredJudgement {
	j := &LayeredJudgement{cs: cs, ls: ls, live: live, policy: p, from: make([]int, len(cs)), layer: make([]*placement.Layer, len(cs))}
	for k, c := range cs {
		i, ok := ls.Index(c.FromSite)
		l, lok := ls.Layer(c.MaxMs)
		if !ok || !lok {
			j.scan = true
			continue
		}
		j.from[k], j.layer[k] = i, l
	}
	return j
}

// Delays returns the delays of cs, the layers a LayeredJudgement needs.
func Delays(cs []placement.Resolved) []float64 {
	out := make([]float64, len(cs))
	for i, c := range cs {
		out[i] = c.MaxMs
	}
	return out
}

// Verdict judges one site.
func (j *LayeredJudgement) Verdict(site string) placement.Verdict {
	i, ok := j.ls.Index(site)
	if !ok || j.scan {
		return placement.CheckSite(j.cs, site, j.live, j.policy)
	}
	if j.inside(i) {
		return placement.Verdict{OK: true}
	}
	return placement.CheckSite(j.cs, site, j.ls, j.policy)
}

// inside reports whether site index i lies in every constraint's feasible
// set.
func (j *LayeredJudgement) inside(i int) bool {
	for k := range j.cs {
		if !j.layer[k].Within(j.from[k], i) {
			return false
		}
	}
	return true
}

// Judgement judges every site, as JudgeSites does (for the fail-open rule,
// when no node fits).
func (j *LayeredJudgement) Judgement(sites []string) *DelayJudgement {
	return judge(sites, j.Verdict)
}
