package placement

import (
	"cmp"
	"math"
	"slices"
)

// flow is the min-cost transport of a rate-limited problem, kept solved so
// that a change of a few sites' capacities (one replica moved or added) is
// re-solved from the last solution instead of from nothing.
//
// The network: each traffic site k sends its traffic to sites j (any of
// them, at cost dist(k, j)), and each site j passes at most caps[j] on to the
// sink t. The solver is successive shortest paths on a pseudo-flow: the
// traffic is first sent to each site's nearest open site (optimal with no
// capacity), and every imbalance that a capacity leaves (a site that takes
// more than it may pass on, or a new capacity worth using) is then pushed
// along shortest paths of the residual network under Johnson potentials, so
// that every reduced cost stays non-negative and the flow stays optimal.
// Dijkstra stops at the first node that can take the imbalance, which on an
// edge cluster is close by: a re-solve costs a few short searches.
//
// A trial (mark, change, solve, read, rollback) leaves the state as it was.
type flow struct {
	p    *Problem
	n    int
	src  []int     // the traffic sites, as network sources 0..len(src)-1
	w    []float64 // their traffic
	cost []float64 // dist(src[k], j) at [k*n+j]

	f        []float64 // flow from source k to site j at [k*n+j]
	in       [][]int   // per site, the sources that may send it flow (a superset)
	outs     [][]int   // per source, the sites it may send flow (a superset)
	inSet    []bool    // [k*n+j]: k is listed in in[j] and j in outs[k]
	caps     []float64 // per site, what it may pass to the sink
	absorbed []float64 // per site, what it receives
	tflow    []float64 // per site, what it passes to the sink
	hs, hj   []float64 // potentials of sources and sites
	ht       float64   // potential of the sink
	et       float64   // the sink's imbalance: passed to it minus all traffic
	total    float64   // the cost of the flow (rate x ms)
	tol      float64   // flows below this count as none
	broken   bool      // an imbalance could not be pushed anywhere

	// Dijkstra's scratch, over nodes: sources, then sites, then the sink.
	dist []float64
	prev []int
	done []bool
	heap nodeHeap
	open []int // the sites in the network: with capacity or flow
	// Per source, every site by cost (sorted when the source is first
	// searched from), those costs in that order (read in sequence), and how
	// far the search has scanned it.
	order     [][]int32
	orderCost [][]float64
	pos       []int
	maxHJ     float64 // the highest potential of a site in the network
	// The same per site for the searches backward: every source by cost,
	// and the lowest potential of a source.
	siteOrder [][]int32
	sitePos   []int
	minHS     float64
	// path is the augmenting path found last.
	path []int

	// The trial's saved state.
	trial     bool
	journal   []fEntry
	inLen     []int
	outLen    []int
	saved     [][]float64
	savedHT   float64
	savedET   float64
	savedTot  float64
	savedBrok bool
}

type fEntry struct {
	at  int
	old float64
}

// newFlow solves the transport of p's traffic to sites with these capacities
// (which must together take all of it). Once h stops, the flow is unfinished.
func newFlow(h *halt, p *Problem, caps []float64) *flow {
	n := len(p.Sites)
	fl := &flow{p: p, n: n}
	W := 0.0
	for i, wi := range p.Traffic {
		if wi > 0 {
			fl.src = append(fl.src, i)
			fl.w = append(fl.w, wi)
			W += wi
		}
	}
	S := len(fl.src)
	fl.tol = eps * math.Max(1, W)
	fl.cost = make([]float64, S*n)
	for k, i := range fl.src {
		for j := range n {
			fl.cost[k*n+j] = p.dist(i, j)
		}
	}
	fl.f = make([]float64, S*n)
	fl.inSet = make([]bool, S*n)
	fl.in = make([][]int, n)
	fl.outs = make([][]int, S)
	fl.caps = append([]float64(nil), caps...)
	fl.absorbed = make([]float64, n)
	fl.tflow = make([]float64, n)
	fl.hs = make([]float64, S)
	fl.hj = make([]float64, n)
	V := S + n + 1
	fl.dist = make([]float64, V)
	fl.prev = make([]int, V)
	fl.done = make([]bool, V)
	fl.inLen = make([]int, n)
	fl.outLen = make([]int, S)
	fl.order = make([][]int32, S)
	fl.orderCost = make([][]float64, S)
	fl.pos = make([]int, S)
	fl.siteOrder = make([][]int32, n)
	fl.sitePos = make([]int, n)
	fl.saved = make([][]float64, 5)
	// Every source to its nearest open site: optimal without capacities,
	// with each source's potential minus that distance.
	for k := range fl.src {
		best := -1
		for j := range n {
			if fl.caps[j] > 0 && (best < 0 || fl.cost[k*n+j] < fl.cost[k*n+best]) {
				best = j
			}
		}
		if best < 0 {
			fl.broken = true
			return fl
		}
		fl.addFlow(k, best, fl.w[k])
		fl.hs[k] = -fl.cost[k*n+best]
	}
	fl.et = -W
	for j := range n {
		t := math.Min(fl.absorbed[j], fl.caps[j])
		fl.tflow[j] = t
		fl.et += t
	}
	fl.solve(h)
	return fl
}

func (fl *flow) addFlow(k, j int, d float64) {
	at := k*fl.n + j
	if fl.trial {
		fl.journal = append(fl.journal, fEntry{at, fl.f[at]})
	}
	fl.f[at] += d
	fl.absorbed[j] += d
	fl.total += d * fl.cost[at]
	if !fl.inSet[at] {
		fl.inSet[at] = true
		fl.in[j] = append(fl.in[j], k)
		fl.outs[k] = append(fl.outs[k], j)
	}
}

// excess is site j's imbalance: what it receives beyond what it passes on.
func (fl *flow) excess(j int) float64 { return fl.absorbed[j] - fl.tflow[j] }

// setCap changes site j's capacity, leaving imbalances for solve to push.
func (fl *flow) setCap(j int, c float64) {
	if fl.caps[j] <= 0 && fl.absorbed[j] <= fl.tol {
		// A site new to the network: the highest potential that keeps every
		// arc into it non-negative.
		h := math.Inf(1)
		for k := range fl.src {
			h = math.Min(h, fl.cost[k*fl.n+j]+fl.hs[k])
		}
		fl.hj[j] = h
	}
	fl.caps[j] = c
	if fl.tflow[j] > c {
		fl.et -= fl.tflow[j] - c
		fl.tflow[j] = c
	} else if fl.hj[j] < fl.ht-1e-12 && fl.tflow[j] < c {
		// Passing more through j is worth it: saturate, and let solve take
		// back what is not.
		fl.et += c - fl.tflow[j]
		fl.tflow[j] = c
	}
}

// node indices
func (fl *flow) sinkNode() int { return len(fl.src) + fl.n }

func (fl *flow) imbalance(v int) float64 {
	S := len(fl.src)
	switch {
	case v < S:
		return 0
	case v < S+fl.n:
		return fl.excess(v - S)
	}
	return fl.et
}

// solve pushes every excess to a deficit along shortest paths; once h stops,
// it returns with the flow unfinished.
//
// Each round is one Dijkstra, from the excesses forward or, when the sink has
// an excess (a new capacity worth using), from the deficits backward: the
// sink reaches nearly every site at reduced cost 0, so a search from it would
// visit the whole network before the first useful path. (A blocking phase
// along all zero-cost paths after each search, as the primal-dual method
// does, was tried: it cost more than the searches it saved.)
func (fl *flow) solve(h *halt) {
	S, n := len(fl.src), fl.n
	t := fl.sinkNode()
	V := t + 1
	for !fl.broken {
		if h.stopped() {
			return
		}
		fl.open = fl.open[:0]
		fl.maxHJ = math.Inf(-1)
		for j := range n {
			if fl.inNetwork(j) {
				fl.open = append(fl.open, j)
				if fl.hj[j] > fl.maxHJ {
					fl.maxHJ = fl.hj[j]
				}
			}
		}
		back := fl.et > fl.tol
		if back {
			fl.minHS = math.Inf(1)
			for _, hs := range fl.hs {
				if hs < fl.minHS {
					fl.minHS = hs
				}
			}
		}
		fl.heap = fl.heap[:0]
		for v := range V {
			fl.dist[v], fl.prev[v], fl.done[v] = math.Inf(1), -1, false
			if fl.starts(v, back) {
				fl.dist[v] = 0
				fl.heap.push(0, v)
			}
		}
		if len(fl.heap) == 0 {
			return
		}
		found := -1
		for len(fl.heap) > 0 {
			d, u := fl.heap.pop()
			if u >= V+S { // the rest of the arcs into a site, from this distance on
				if fl.scanSite(h, u-V-S, d) {
					return
				}
				continue
			}
			if u >= V { // the rest of a source's arcs, from this distance on
				if fl.scanSource(h, u-V, d) {
					return
				}
				continue
			}
			if fl.done[u] || d > fl.dist[u] {
				continue
			}
			fl.done[u] = true
			if fl.starts(u, !back) {
				found = u
				break
			}
			if u < S && !back {
				fl.pos[u] = 0
				if fl.scanSource(h, u, d) {
					return
				}
				continue
			}
			if u >= S && u < t && back {
				j := u - S
				if fl.tflow[j] > fl.tol {
					fl.relax(u, t, d+fl.ht-fl.hj[j])
				}
				fl.sitePos[j] = 0
				if fl.scanSite(h, j, d) {
					return
				}
				continue
			}
			if fl.arcs(h, u, back, func(v int, rc float64) bool {
				fl.relax(u, v, d+rc)
				return false
			}) {
				return
			}
		}
		if found < 0 {
			fl.broken = true
			return
		}
		df := fl.dist[found]
		sign := 1.0
		if back {
			sign = -1
		}
		for v := range V {
			d := df
			if fl.dist[v] < df {
				d = fl.dist[v]
			}
			d *= sign
			switch {
			case v < S:
				fl.hs[v] += d
			case v < t:
				fl.hj[v-S] += d
			default:
				fl.ht += d
			}
		}
		// The path in the direction of flow, then the push.
		fl.path = fl.path[:0]
		for v := found; v >= 0; v = fl.prev[v] {
			fl.path = append(fl.path, v)
		}
		if !back {
			slices.Reverse(fl.path)
		}
		fl.push()
	}
}

// inNetwork reports whether site j is in the network: with capacity or flow.
func (fl *flow) inNetwork(j int) bool { return fl.caps[j] > 0 || fl.absorbed[j] > fl.tol }

// relax lowers v's tentative distance to nd, reached from u, if that is shorter.
func (fl *flow) relax(u, v int, nd float64) {
	if nd < fl.dist[v]-1e-12 && !fl.done[v] {
		fl.dist[v], fl.prev[v] = nd, u
		fl.heap.push(nd, v)
	}
}

// scanSource relaxes source k's arcs to the sites in the network, nearest
// first, as long as their reduced cost cannot take them beyond key, the
// search's distance: the arcs beyond wait in the heap at the least distance
// they could reach (the site's cost less the highest site potential), so a
// search that ends nearby never scans the far sites. It reports true once h
// stops.
func (fl *flow) scanSource(h *halt, k int, key float64) bool {
	if fl.order[k] == nil {
		o := make([]int32, fl.n)
		for j := range o {
			o[j] = int32(j)
		}
		row := fl.cost[k*fl.n : (k+1)*fl.n]
		slices.SortFunc(o, func(a, b int32) int {
			return cmp.Or(cmp.Compare(row[a], row[b]), cmp.Compare(a, b))
		})
		oc := make([]float64, fl.n)
		for i, j := range o {
			oc[i] = row[j]
		}
		fl.order[k], fl.orderCost[k] = o, oc
	}
	S, n, o, oc := len(fl.src), fl.n, fl.order[k], fl.orderCost[k]
	base := fl.dist[k] + fl.hs[k]
	start := fl.pos[k]
	for fl.pos[k] < n {
		j, c := int(o[fl.pos[k]]), oc[fl.pos[k]]
		if lb := base + c - fl.maxHJ; lb > key {
			fl.heap.push(lb, S+n+1+k)
			break
		}
		fl.pos[k]++
		if fl.inNetwork(j) {
			fl.relax(k, S+j, base+c-fl.hj[j])
		}
	}
	return h.spend(1 + fl.pos[k] - start)
}

// scanSite is scanSource for the searches backward: it relaxes the arcs into
// site j from every source, cheapest first, as long as they cannot take the
// search beyond key, and leaves the rest in the heap at the least distance
// they could reach (the cost less the site's potential plus the lowest source
// potential). It reports true once h stops.
func (fl *flow) scanSite(h *halt, j int, key float64) bool {
	S, n := len(fl.src), fl.n
	if fl.siteOrder[j] == nil {
		o := make([]int32, S)
		for k := range o {
			o[k] = int32(k)
		}
		slices.SortFunc(o, func(a, b int32) int {
			return cmp.Or(cmp.Compare(fl.cost[int(a)*n+j], fl.cost[int(b)*n+j]), cmp.Compare(a, b))
		})
		fl.siteOrder[j] = o
	}
	o := fl.siteOrder[j]
	base := fl.dist[S+j] - fl.hj[j]
	start := fl.sitePos[j]
	for fl.sitePos[j] < S {
		k := int(o[fl.sitePos[j]])
		c := fl.cost[k*n+j]
		if lb := base + c + fl.minHS; lb > key {
			fl.heap.push(lb, S+n+1+S+j)
			break
		}
		fl.sitePos[j]++
		fl.relax(S+j, k, base+c+fl.hs[k])
	}
	return h.spend(1 + fl.sitePos[j] - start)
}

// starts reports whether v has an excess (forward) or a deficit (back).
func (fl *flow) starts(v int, back bool) bool {
	if back {
		return v >= len(fl.src) && fl.imbalance(v) < -fl.tol
	}
	return v >= len(fl.src) && fl.imbalance(v) > fl.tol
}

// push sends as much as fl.path (in the direction of flow, from an excess to
// a deficit) can carry.
func (fl *flow) push() {
	p := fl.path
	d := math.Min(fl.imbalance(p[0]), -fl.imbalance(p[len(p)-1]))
	for i := 1; i < len(p); i++ {
		d = math.Min(d, fl.residual(p[i-1], p[i]))
	}
	for i := 1; i < len(p); i++ {
		fl.augment(p[i-1], p[i], d)
	}
}

// arcs calls visit with each residual arc out of u (or, back, into u) and
// its reduced cost, until visit returns true. It reports true once h stops.
// The arcs out of a source, and back into a site, are not its: scanSource and
// scanSite relax them, nearest first.
func (fl *flow) arcs(h *halt, u int, back bool, visit func(v int, rc float64) bool) bool {
	S, n, t := len(fl.src), fl.n, fl.sinkNode()
	switch {
	case u < S: // into a source: from the sites it sends flow
		if h.spend(len(fl.outs[u])) {
			return true
		}
		for _, j := range fl.outs[u] {
			if fl.f[u*n+j] > fl.tol && visit(S+j, -fl.cost[u*n+j]+fl.hj[j]-fl.hs[u]) {
				return false
			}
		}
	case u < t && !back: // a site: back to its sources, on to the sink
		j := u - S
		if h.spend(len(fl.in[j]) + 1) {
			return true
		}
		if fl.tflow[j] < fl.caps[j]-fl.tol && visit(t, fl.hj[j]-fl.ht) {
			return false
		}
		for _, k := range fl.in[j] {
			if fl.f[k*n+j] > fl.tol && visit(k, -fl.cost[k*n+j]+fl.hj[j]-fl.hs[k]) {
				return false
			}
		}
	case !back: // the sink: back to the sites that pass it flow
		if h.spend(len(fl.open)) {
			return true
		}
		for _, j := range fl.open {
			if fl.tflow[j] > fl.tol && visit(S+j, fl.ht-fl.hj[j]) {
				return false
			}
		}
	default: // into the sink: from the sites with room
		if h.spend(len(fl.open)) {
			return true
		}
		for _, j := range fl.open {
			if fl.tflow[j] < fl.caps[j]-fl.tol && visit(S+j, fl.hj[j]-fl.ht) {
				return false
			}
		}
	}
	return false
}

// residual is the capacity left on arc u -> v of the residual network.
func (fl *flow) residual(u, v int) float64 {
	S, n, t := len(fl.src), fl.n, fl.sinkNode()
	switch {
	case u < S:
		return math.Inf(1)
	case u < t && v < S:
		return fl.f[v*n+u-S]
	case u < t:
		return fl.caps[u-S] - fl.tflow[u-S]
	}
	return fl.tflow[v-S]
}

func (fl *flow) augment(u, v int, d float64) {
	S, n, t := len(fl.src), fl.n, fl.sinkNode()
	switch {
	case u < S:
		fl.addFlow(u, v-S, d)
	case u < t && v < S:
		fl.addFlow(v, u-S, -d)
		if fl.f[v*n+u-S] < 0 {
			fl.addFlow(v, u-S, -fl.f[v*n+u-S])
		}
	case u < t:
		fl.tflow[u-S] += d
		fl.et += d
	default:
		fl.tflow[v-S] -= d
		fl.et -= d
	}
}

// mark starts a trial: every change until rollback is undone by it.
func (fl *flow) mark() {
	fl.trial = true
	fl.journal = fl.journal[:0]
	for j := range fl.n {
		fl.inLen[j] = len(fl.in[j])
	}
	for k := range fl.outs {
		fl.outLen[k] = len(fl.outs[k])
	}
	for k, a := range [][]float64{fl.caps, fl.absorbed, fl.tflow, fl.hs, fl.hj} {
		fl.saved[k] = append(fl.saved[k][:0], a...)
	}
	fl.savedHT, fl.savedET, fl.savedTot, fl.savedBrok = fl.ht, fl.et, fl.total, fl.broken
}

// rollback ends a trial, restoring the state mark saved.
func (fl *flow) rollback() {
	for i := len(fl.journal) - 1; i >= 0; i-- {
		fl.f[fl.journal[i].at] = fl.journal[i].old
	}
	for j := range fl.n {
		for _, k := range fl.in[j][fl.inLen[j]:] {
			fl.inSet[k*fl.n+j] = false
		}
		fl.in[j] = fl.in[j][:fl.inLen[j]]
	}
	for k := range fl.outs {
		fl.outs[k] = fl.outs[k][:fl.outLen[k]]
	}
	for k, a := range [][]float64{fl.caps, fl.absorbed, fl.tflow, fl.hs, fl.hj} {
		copy(a, fl.saved[k])
	}
	fl.ht, fl.et, fl.total, fl.broken = fl.savedHT, fl.savedET, fl.savedTot, fl.savedBrok
	fl.trial = false
}

// commit ends a trial, keeping its changes.
func (fl *flow) commit() { fl.trial = false }

// value is the flow's total cost, +Inf when it could not be completed.
func (fl *flow) value() float64 {
	if fl.broken {
		return math.Inf(1)
	}
	return fl.total
}

// nodeHeap is a binary min-heap of (distance, node), with stale entries
// skipped by the caller.
type nodeHeap []heapItem

type heapItem struct {
	d float64
	v int
}

func (hp *nodeHeap) push(d float64, v int) {
	*hp = append(*hp, heapItem{d, v})
	a := *hp
	i := len(a) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if a[parent].d <= a[i].d {
			break
		}
		a[parent], a[i] = a[i], a[parent]
		i = parent
	}
}

func (hp *nodeHeap) pop() (float64, int) {
	a := *hp
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a = a[:last]
	i := 0
	for {
		l, r, small := 2*i+1, 2*i+2, i
		if l < len(a) && a[l].d < a[small].d {
			small = l
		}
		if r < len(a) && a[r].d < a[small].d {
			small = r
		}
		if small == i {
			break
		}
		a[i], a[small] = a[small], a[i]
		i = small
	}
	*hp = a
	return top.d, top.v
}

// The Lagrangian bound of a change of capacities. Relax "all of source k's
// traffic is routed" with the multiplier lambda_k = ht - hs_k (what serving k
// costs at the margin, under the flow's potentials): what remains splits by
// site into a fractional knapsack, in which site j takes the sources whose
// value c_kj - lambda_k is negative, most negative first, up to its capacity.
// At the optimum the knapsacks add up to the flow's cost, and for any other
// capacities they add up to at most their optimal cost: so the change in site
// j's knapsack value bounds from below the change in cost that changing only
// j's capacity (or several sites', summed) can bring.

// knapItem is one source in a site's knapsack: its value per unit, its
// traffic, and the source.
type knapItem struct {
	a, w float64
	k    int
}

// knapsack returns site j's items of negative value, most negative first,
// reusing buf.
func (fl *flow) knapsack(j int, buf []knapItem) []knapItem {
	buf = buf[:0]
	n := fl.n
	for k := range fl.src {
		if a := fl.cost[k*n+j] + fl.hs[k] - fl.ht; a < 0 {
			buf = append(buf, knapItem{a, fl.w[k], k})
		}
	}
	slices.SortFunc(buf, func(x, y knapItem) int {
		return cmp.Compare(x.a, y.a)
	})
	return buf
}

// knapValue is the knapsack's value at capacity c: the most negative items
// taken first, the last one in part.
func knapValue(items []knapItem, c float64) float64 {
	v := 0.0
	for _, it := range items {
		if c <= 0 {
			break
		}
		take := math.Min(it.w, c)
		v += take * it.a
		c -= take
	}
	return v
}

// admissible is the tolerance under which two potentials count as equal.
const admissible = 1e-9

// knapExact reports whether the knapsack of a site that has no flow, filled
// to capacity c, is a flow: when each source it takes can move that much from
// sites whose potential is the sink's. The cost then changes by exactly the
// knapsack's value (the bound is met), with no trial needed.
func knapExact(items []knapItem, c float64, movable []float64, tol float64) bool {
	for _, it := range items {
		if c <= 0 {
			break
		}
		take := math.Min(it.w, c)
		if take > movable[it.k]+tol {
			return false
		}
		c -= take
	}
	return true
}
