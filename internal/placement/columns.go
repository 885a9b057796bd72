package placement

import (
	"cmp"
	"math"
	"slices"
)

// columns is the min-cost transport onto few sites, the columns: the sites
// with replicas, and one more, the trial column, whose cost to each traffic
// site (its row) is that of any site chosen for it. It is what one more
// replica at each site costs: the new replica's capacity is the trial
// column's (when the replicas are overloaded, every open site's capacity
// shrinks as well, to its share of the new total, or to its own rate when
// one more replica makes them serve all traffic), and the trials differ
// only in the column's costs, so each trial starts from the last one's
// optimum (with sites near one another in turn, few rows move: some 25 a
// trial at 500 sites with 10 overloaded replicas). Where the capacities do
// not shrink, marginals bounds a trial without one.
//
// The solver is flow's (successive shortest paths under potentials, the same
// network: rows send their traffic to columns, each column passes at most
// its capacity to the sink), but a row has flow at few columns, so a path is
// a chain of columns, each step one row moving from one column to the next.
// The shortest paths run over the columns and the sink alone, each arc the
// cheapest row that can make the step: a search costs (columns+1)^2 however
// many rows there are.
type columns struct {
	S, m   int       // rows, columns (the trial column is m-1)
	w      []float64 // per row, its traffic
	src    []int     // per row, its site
	d      []float64 // [c*S+i] the cost of row i at column c
	f      []float64 // [c*S+i] the flow of row i at column c
	member []bool    // [c*S+i]: i is listed in rows[c]
	rows   [][]int   // per column, the rows with flow there (and some without)
	caps   []float64 // per column, what it may pass to the sink
	a      []float64 // per column, what it receives
	tf     []float64 // per column, what it passes to the sink
	pi     []float64 // potentials: the columns', then the sink's
	et     float64   // the sink's imbalance: passed to it minus all traffic
	tol    float64   // flows below this count as none
	broken bool      // an imbalance could not be pushed anywhere

	// bestVal[c*m+l] is the least d[l*S+i]-d[c*S+i] over rows i with flow at
	// c, and bestRow that row (-1: none): the arc c -> l. nextVal and
	// nextRow are the runner-up, which takes over when the best row leaves
	// c (-1: none, -2: not known; a runner-up that has left is not known
	// either); only then are c's rows searched again.
	bestVal, nextVal []float64
	bestRow, nextRow []int
	// stale[c] says that c's arcs are not known: the trial column's after
	// its costs change, searched for only if a search needs them (one
	// from the trial column, its only deficit, never does).
	stale []bool

	// The search's scratch, over nodes: the columns, then the sink.
	dist   []float64
	prev   []int
	left   []int  // the nodes not yet settled
	excess []bool // per node, whether it has an excess
	path   []pathStep
}

// pathStep is one arc of an augmenting path: from node u to node v, through
// row r when both are columns.
type pathStep struct{ u, v, r int }

// newColumns solves the transport of p's traffic onto the sites cols with
// capacities caps (which must together take all of it), with room for a
// trial column, closed (capacity 0, every cost +Inf) until the first trial.
// Once h stops, the flow is unfinished.
func newColumns(h *halt, p *Problem, cols []int, caps []float64) *columns {
	m := len(cols) + 1
	cs := &columns{m: m}
	// The rows (sites with traffic) in the order of their nearest column,
	// so that the rows at a column lie together in memory.
	W := 0.0
	type near struct{ s, c int }
	var rows []near
	for s, ws := range p.Traffic {
		if ws > 0 {
			best := 0
			for c, j := range cols {
				if p.dist(s, j) < p.dist(s, cols[best]) {
					best = c
				}
			}
			rows = append(rows, near{s, best})
			W += ws
		}
	}
	slices.SortStableFunc(rows, func(a, b near) int { return cmp.Compare(a.c, b.c) })
	for _, r := range rows {
		cs.src = append(cs.src, r.s)
		cs.w = append(cs.w, p.Traffic[r.s])
	}
	S := len(cs.src)
	cs.S, cs.tol = S, eps*math.Max(1, W)
	cs.d, cs.f, cs.member = make([]float64, S*m), make([]float64, S*m), make([]bool, S*m)
	cs.rows = make([][]int, m)
	cs.caps, cs.a, cs.tf = make([]float64, m), make([]float64, m), make([]float64, m)
	cs.pi = make([]float64, m+1)
	cs.bestVal, cs.bestRow = make([]float64, m*m), make([]int, m*m)
	cs.nextVal, cs.nextRow = make([]float64, m*m), make([]int, m*m)
	cs.stale = make([]bool, m)
	cs.dist, cs.prev, cs.excess = make([]float64, m+1), make([]int, m+1), make([]bool, m+1)
	copy(cs.caps, caps)
	// Every row to its nearest column: optimal without capacities, under
	// potentials of 0.
	for i, s := range cs.src {
		cs.d[(m-1)*S+i] = math.Inf(1)
		best := 0
		for c, j := range cols {
			cs.d[c*S+i] = p.dist(s, j)
			if cs.d[c*S+i] < cs.d[best*S+i] {
				best = c
			}
		}
		cs.f[best*S+i] = cs.w[i]
		cs.member[best*S+i] = true
		cs.a[best] += cs.w[i]
		cs.rows[best] = append(cs.rows[best], i)
	}
	cs.et = -W
	for c := range cols {
		cs.tf[c] = math.Min(cs.a[c], cs.caps[c])
		cs.et += cs.tf[c]
	}
	for c := range m {
		cs.refresh(c)
	}
	cs.solve(h)
	return cs
}

// marginals is the Lagrangian bound of the trial column, taken at the
// optimum with it closed (as flow.knapsack is of a site's capacity): relax
// "all of row i's traffic is served" with the multiplier lambda[i], what
// serving one more unit of row i costs there, and the trial column's part is
// a fractional knapsack of the rows cheaper at it than their multiplier,
// the most so first, up to its capacity. Its value bounds from below how
// much the column changes the cost; it is that change when the rows it takes
// can leave columns whose potential is the sink's (movable): no other row
// then moves.
type marginals struct {
	lambda  []float64 // per row, its multiplier
	movable []float64 // per row, its flow at columns of the sink's potential
	w       []float64 // per row, its traffic
	tol     float64
	items   []knapItem // drop's scratch
}

// marginals reads the bound off the flow, which must be optimal with the
// trial column closed and the capacities it is to be tried with.
func (cs *columns) marginals() *marginals {
	m, S, t := cs.m, cs.S, cs.m
	mc := &marginals{lambda: make([]float64, S), movable: make([]float64, S), w: cs.w, tol: cs.tol}
	for i := range S {
		best := math.Inf(1)
		for c := range m - 1 {
			// One more unit at c costs its RTT and, when c is full,
			// what making room there costs (pi[t]-pi[c]).
			best = math.Min(best, cs.d[c*S+i]+cs.pi[t]-cs.pi[c])
			if f := cs.f[c*S+i]; f > cs.tol && cs.pi[c] >= cs.pi[t]-admissible {
				mc.movable[i] += f
			}
		}
		mc.lambda[i] = best
	}
	return mc
}

// drop returns how much a trial column of capacity c and costs cost (per
// row) lowers the cost (rate x ms), and whether the bound settles it.
func (mc *marginals) drop(cost []float64, c float64) (float64, bool) {
	items := mc.items[:0]
	for i, l := range mc.lambda {
		if a := cost[i] - l; a < 0 {
			items = append(items, knapItem{a, mc.w[i], i})
		}
	}
	slices.SortFunc(items, func(x, y knapItem) int { return cmp.Compare(x.a, y.a) })
	mc.items = items
	switch d := knapValue(items, c); {
	case d >= -mc.tol*eps:
		return 0, true // more capacity never costs more
	case knapExact(items, c, mc.movable, mc.tol):
		return -d, true
	}
	return 0, false
}

// setCap changes column c's capacity as flow.setCap does, leaving
// imbalances for solve.
func (cs *columns) setCap(c int, v float64) {
	cs.caps[c] = v
	t := cs.m
	if cs.tf[c] > v {
		cs.et -= cs.tf[c] - v
		cs.tf[c] = v
	} else if cs.pi[c] < cs.pi[t]-1e-12 && cs.tf[c] < v {
		cs.et += v - cs.tf[c]
		cs.tf[c] = v
	}
}

// refresh recomputes every arc out of column c.
func (cs *columns) refresh(c int) {
	m := cs.m
	for l := range m {
		cs.bestRow[c*m+l], cs.nextRow[c*m+l] = -1, -1
	}
	rs := cs.rows[c][:0]
	for _, i := range cs.rows[c] {
		if cs.f[c*cs.S+i] == 0 {
			cs.member[c*cs.S+i] = false
			continue
		}
		rs = append(rs, i)
		if cs.f[c*cs.S+i] > cs.tol {
			cs.offer(c, i)
		}
	}
	cs.rows[c] = rs
}

// fresh makes column c's arcs known.
func (cs *columns) fresh(c int) {
	if cs.stale[c] {
		cs.stale[c] = false
		cs.refresh(c)
	}
}

// offer makes row i, which has flow at column c, a candidate for every arc
// out of c.
func (cs *columns) offer(c, i int) {
	m, S := cs.m, cs.S
	row, val := cs.bestRow[c*m:c*m+m], cs.bestVal[c*m:c*m+m]
	row2, val2 := cs.nextRow[c*m:c*m+m], cs.nextVal[c*m:c*m+m]
	base := cs.d[c*S+i]
	for l := range m {
		if l == c {
			continue
		}
		switch v := cs.d[l*S+i] - base; {
		case row[l] < 0 || v < val[l]:
			val2[l], row2[l] = val[l], row[l]
			val[l], row[l] = v, i
		case row2[l] == -1 || (row2[l] >= 0 && v < val2[l]):
			val2[l], row2[l] = v, i
		}
	}
}

// recompute recomputes the arc c -> l, dropping from c's list the rows
// without flow there.
func (cs *columns) recompute(c, l int) {
	S, m, tol := cs.S, cs.m, cs.tol
	// This column's flows and costs, and the costs at l, by row.
	fs, member, dc, dl := cs.f[c*S:c*S+S], cs.member[c*S:c*S+S], cs.d[c*S:c*S+S], cs.d[l*S:l*S+S]
	best, row := math.Inf(1), -1
	best2, row2 := math.Inf(1), -1
	rs := cs.rows[c][:0]
	for _, i := range cs.rows[c] {
		f := fs[i]
		if f == 0 {
			member[i] = false
			continue
		}
		rs = append(rs, i)
		if f > tol {
			switch v := dl[i] - dc[i]; {
			case v < best:
				best2, row2 = best, row
				best, row = v, i
			case v < best2:
				best2, row2 = v, i
			}
		}
	}
	cs.rows[c] = rs
	cs.bestVal[c*m+l], cs.bestRow[c*m+l] = best, row
	cs.nextVal[c*m+l], cs.nextRow[c*m+l] = best2, row2
}

// withdraw mends the arcs out of column c that row i, whose flow there has
// gone, made: the runner-up takes over where it is known, and c's rows are
// searched for the others.
func (cs *columns) withdraw(c, i int) {
	m := cs.m
	row, row2 := cs.bestRow[c*m:c*m+m], cs.nextRow[c*m:c*m+m]
	val, val2 := cs.bestVal[c*m:c*m+m], cs.nextVal[c*m:c*m+m]
	for l := range m {
		if row[l] != i {
			continue
		}
		switch r := row2[l]; {
		case r == -1:
			row[l], val[l] = -1, math.Inf(1)
		case r >= 0 && cs.f[c*cs.S+r] > cs.tol:
			row[l], val[l] = r, val2[l]
			row2[l] = -2
		default:
			cs.recompute(c, l)
		}
	}
}

// move changes row i's flow at column c by v, keeping the lists and arcs.
func (cs *columns) move(i, c int, v float64) {
	at := c*cs.S + i
	was := cs.f[at]
	cs.f[at] += v
	cs.a[c] += v
	if !cs.member[at] {
		cs.member[at] = true
		cs.rows[c] = append(cs.rows[c], i)
	}
	switch now := cs.f[at]; {
	case cs.stale[c]:
		// refresh will see the row
	case was <= cs.tol && now > cs.tol:
		cs.offer(c, i)
	case was > cs.tol && now <= cs.tol:
		cs.withdraw(c, i)
	}
}

// openTrial gives the trial column capacity c (before the first trial).
func (cs *columns) openTrial(c float64) { cs.caps[cs.m-1] = c }

// trial makes the trial column's costs cost (per row), keeping the flow
// optimal: rows at the column that it no longer suits go
// to the column that suits them best, for solve to settle.
func (cs *columns) trial(cost []float64) {
	m, J, t := cs.m, cs.m-1, cs.m
	copy(cs.d[J*cs.S:], cost)
	// The column's potential: the highest that keeps every arc into it
	// from another column non-negative (and, when it passes flow to the
	// sink, the one back from the sink).
	piJ := math.Inf(1)
	for c := range J {
		cs.recompute(c, J)
		if cs.bestRow[c*m+J] >= 0 {
			piJ = math.Min(piJ, cs.bestVal[c*m+J]+cs.pi[c])
		}
	}
	if cs.tf[J] > cs.tol {
		piJ = math.Min(piJ, cs.pi[t])
	}
	if math.IsInf(piJ, 1) {
		piJ = cs.pi[t]
	}
	cs.pi[J] = piJ
	// A row stays at the column only where no arc out of it turns negative
	// (its potential is then piJ minus its cost there).
	for _, i := range cs.rows[J] {
		v := cs.f[J*cs.S+i]
		if v == 0 {
			continue
		}
		hs, bc := math.Inf(-1), -1
		for c := range J {
			if x := cs.pi[c] - cs.d[c*cs.S+i]; x > hs {
				hs, bc = x, c
			}
		}
		if piJ-cs.d[J*cs.S+i] >= hs-admissible {
			continue
		}
		cs.f[J*cs.S+i] = 0
		cs.a[J] -= v
		cs.move(i, bc, v)
	}
	cs.stale[J] = true
	if cs.tf[J] < cs.caps[J]-cs.tol && piJ < cs.pi[t]-1e-12 {
		cs.et += cs.caps[J] - cs.tf[J]
		cs.tf[J] = cs.caps[J]
	}
	// Potentials relative to the sink's, so that they do not drift.
	for v := range cs.pi {
		if v != t {
			cs.pi[v] -= cs.pi[t]
		}
	}
	cs.pi[t] = 0
}

func (cs *columns) imbalance(v int) float64 {
	if v == cs.m {
		return cs.et
	}
	return cs.a[v] - cs.tf[v]
}

// solve pushes every excess to a deficit along shortest paths over the
// columns; once h stops, it returns with the flow unfinished.
//
// Each search runs backward, from the deficits: after a trial the deficit
// is mostly the trial column alone, often the node furthest from the
// excesses, which a search from them would reach only after settling every
// other node (searching from the excesses, or from the fewer of the two,
// settled twice as many nodes and cost 5 to 10 % more).
func (cs *columns) solve(h *halt) {
	V := cs.m + 1
	dist, prev, excess := cs.dist, cs.prev, cs.excess
	for !cs.broken {
		if h.spend(V * V) {
			return
		}
		any := false
		left := cs.left[:0]
		for v := range V {
			dist[v], prev[v] = math.Inf(1), -1
			b := cs.imbalance(v)
			if b < -cs.tol {
				dist[v] = 0
			}
			excess[v] = b > cs.tol
			any = any || excess[v]
			left = append(left, v)
		}
		if !any {
			return
		}
		found := -1
		for len(left) > 0 {
			// The nearest node, an excess among those as near (a
			// search along paths of reduced cost 0 then ends at once).
			k := 0
			dk, ek := dist[left[0]], excess[left[0]]
			for x := 1; x < len(left); x++ {
				if d := dist[left[x]]; d < dk-1e-12 || (d <= dk+1e-12 && excess[left[x]] && !ek) {
					k, dk, ek = x, d, excess[left[x]]
				}
			}
			if dk == math.Inf(1) {
				break
			}
			u := left[k]
			left[k] = left[len(left)-1]
			left = left[:len(left)-1]
			if ek {
				found = u
				break
			}
			cs.relax(u, dk, left)
		}
		cs.left = left
		if found < 0 {
			cs.broken = true
			return
		}
		df := dist[found]
		for v := range V {
			cs.pi[v] -= math.Min(dist[v], df)
		}
		cs.augment(found)
	}
}

// relax lowers the distance (to a deficit) of every unsettled node (left)
// that has an arc into u.
func (cs *columns) relax(u int, du float64, left []int) {
	m, t := cs.m, cs.m
	dist, prev, pi := cs.dist, cs.prev, cs.pi
	if u == t {
		for _, c := range left {
			if c != t && cs.tf[c] < cs.caps[c]-cs.tol {
				if nd := du + pi[c] - pi[t]; nd < dist[c]-1e-12 {
					dist[c], prev[c] = nd, u
				}
			}
		}
		return
	}
	base := du - pi[u]
	for _, l := range left {
		if l == t {
			if cs.tf[u] > cs.tol {
				if nd := base + pi[t]; nd < dist[t]-1e-12 {
					dist[t], prev[t] = nd, u
				}
			}
			continue
		}
		cs.fresh(l)
		if cs.bestRow[l*m+u] >= 0 {
			if nd := base + cs.bestVal[l*m+u] + pi[l]; nd < dist[l]-1e-12 {
				dist[l], prev[l] = nd, u
			}
		}
	}
}

// augment pushes as much as the path found last can carry (from the node
// found, an excess, along prev to a deficit), then again along the same
// columns while that path still costs 0 under the potentials (its arcs
// through the next rows), with no search.
func (cs *columns) augment(found int) {
	m, t := cs.m, cs.m
	cs.path = cs.path[:0]
	for u := found; cs.prev[u] >= 0; u = cs.prev[u] {
		v := cs.prev[u]
		r := -1
		if u != t && v != t {
			r = cs.bestRow[u*m+v]
		}
		cs.path = append(cs.path, pathStep{u, v, r})
	}
	// Deficit end first, as push and admissible read it.
	slices.Reverse(cs.path)
	if cs.push() <= 0 {
		cs.broken = true // nothing moves: the flow cannot be completed
		return
	}
	for cs.admissible() && cs.push() > 0 {
	}
}

// admissible reports whether cs.path, through the best rows now, still
// joins an excess to a deficit at reduced cost 0.
func (cs *columns) admissible() bool {
	m, t, p := cs.m, cs.m, cs.path
	if cs.imbalance(p[len(p)-1].u) <= cs.tol || cs.imbalance(p[0].v) >= -cs.tol {
		return false
	}
	for k := range p {
		s := &p[k]
		var rc float64
		switch {
		case s.v == t:
			if cs.tf[s.u] >= cs.caps[s.u]-cs.tol {
				return false
			}
			rc = cs.pi[s.u] - cs.pi[t]
		case s.u == t:
			if cs.tf[s.v] <= cs.tol {
				return false
			}
			rc = cs.pi[t] - cs.pi[s.v]
		default:
			if s.r = cs.bestRow[s.u*m+s.v]; s.r < 0 {
				return false
			}
			rc = cs.bestVal[s.u*m+s.v] + cs.pi[s.u] - cs.pi[s.v]
		}
		if rc > 1e-12 {
			return false
		}
	}
	return true
}

// push sends as much as cs.path (from its last step's tail to its first
// step's head) can carry, and returns how much.
func (cs *columns) push() float64 {
	S, t, p := cs.S, cs.m, cs.path
	d := math.Min(cs.imbalance(p[len(p)-1].u), -cs.imbalance(p[0].v))
	for _, s := range p {
		switch {
		case s.v == t:
			d = math.Min(d, cs.caps[s.u]-cs.tf[s.u])
		case s.u == t:
			d = math.Min(d, cs.tf[s.v])
		default:
			d = math.Min(d, cs.f[s.u*S+s.r])
		}
	}
	for _, s := range p {
		switch {
		case s.v == t:
			cs.tf[s.u] += d
			cs.et += d
		case s.u == t:
			cs.tf[s.v] -= d
			cs.et -= d
		default:
			cs.move(s.r, s.v, d)
			cs.move(s.r, s.u, -d)
		}
	}
	return d
}

// value is the flow's total cost (rate x ms), +Inf when it could not be
// completed.
func (cs *columns) value() float64 {
	if cs.broken {
		return math.Inf(1)
	}
	S, total := cs.S, 0.0
	for c, rs := range cs.rows {
		for _, i := range rs {
			total += cs.f[c*S+i] * cs.d[c*S+i]
		}
	}
	return total
}
