package placement

import "math"

// columns is the min-cost transport onto few sites, the columns: the sites
// with replicas, and one more, the trial column, whose cost to each traffic
// site (its row) is that of any site chosen for it. It is what one more
// replica at each site costs when the replicas are overloaded: every open
// site's capacity shrinks to its share of the new total, the new replica's
// capacity is the trial column's, and the trials differ only in the column's
// costs, so each trial starts from the last one's optimum (with sites near
// one another in turn, few rows move).
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
	d      []float64 // [i*m+c] the cost of row i at column c
	f      []float64 // [i*m+c] the flow of row i at column c
	member []bool    // [i*m+c]: i is listed in rows[c]
	rows   [][]int   // per column, the rows with flow there (and some without)
	caps   []float64 // per column, what it may pass to the sink
	a      []float64 // per column, what it receives
	tf     []float64 // per column, what it passes to the sink
	pi     []float64 // potentials: the columns', then the sink's
	et     float64   // the sink's imbalance: passed to it minus all traffic
	tol    float64   // flows below this count as none
	broken bool      // an imbalance could not be pushed anywhere
	rounds int

	// bestVal[c*m+l] is the least d[i*m+l]-d[i*m+c] over rows i with flow at
	// c, and bestRow that row (-1: none): the arc c -> l.
	bestVal []float64
	bestRow []int

	// The search's scratch, over nodes: the columns, then the sink.
	dist []float64
	prev []int
	done []bool
	path []pathStep
	need []int // withdraw's arcs to recompute
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
	W := 0.0
	for i, wi := range p.Traffic {
		if wi > 0 {
			cs.src = append(cs.src, i)
			cs.w = append(cs.w, wi)
			W += wi
		}
	}
	S := len(cs.src)
	cs.S, cs.tol = S, eps*math.Max(1, W)
	cs.d, cs.f, cs.member = make([]float64, S*m), make([]float64, S*m), make([]bool, S*m)
	cs.rows = make([][]int, m)
	cs.caps, cs.a, cs.tf = make([]float64, m), make([]float64, m), make([]float64, m)
	cs.pi = make([]float64, m+1)
	cs.bestVal, cs.bestRow = make([]float64, m*m), make([]int, m*m)
	cs.dist, cs.prev, cs.done = make([]float64, m+1), make([]int, m+1), make([]bool, m+1)
	copy(cs.caps, caps)
	// Every row to its nearest column: optimal without capacities, under
	// potentials of 0.
	for i, s := range cs.src {
		cs.d[i*m+m-1] = math.Inf(1)
		best := 0
		for c, j := range cols {
			cs.d[i*m+c] = p.dist(s, j)
			if cs.d[i*m+c] < cs.d[i*m+best] {
				best = c
			}
		}
		cs.f[i*m+best] = cs.w[i]
		cs.member[i*m+best] = true
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
		cs.bestRow[c*m+l] = -1
	}
	rs := cs.rows[c][:0]
	for _, i := range cs.rows[c] {
		if cs.f[i*m+c] == 0 {
			cs.member[i*m+c] = false
			continue
		}
		rs = append(rs, i)
		if cs.f[i*m+c] > cs.tol {
			cs.offer(c, i)
		}
	}
	cs.rows[c] = rs
}

// offer makes row i, which has flow at column c, a candidate for every arc
// out of c.
func (cs *columns) offer(c, i int) {
	m := cs.m
	base := cs.d[i*m+c]
	for l := range m {
		if l == c {
			continue
		}
		if v := cs.d[i*m+l] - base; cs.bestRow[c*m+l] < 0 || v < cs.bestVal[c*m+l] {
			cs.bestVal[c*m+l], cs.bestRow[c*m+l] = v, i
		}
	}
}

// recompute recomputes the arc c -> l, dropping from c's list the rows
// without flow there.
func (cs *columns) recompute(c, l int) {
	m := cs.m
	best, row := math.Inf(1), -1
	rs := cs.rows[c][:0]
	for _, i := range cs.rows[c] {
		f := cs.f[i*m+c]
		if f == 0 {
			cs.member[i*m+c] = false
			continue
		}
		rs = append(rs, i)
		if f > cs.tol {
			if v := cs.d[i*m+l] - cs.d[i*m+c]; v < best {
				best, row = v, i
			}
		}
	}
	cs.rows[c] = rs
	cs.bestVal[c*m+l], cs.bestRow[c*m+l] = best, row
}

// withdraw recomputes the arcs out of column c that row i, whose flow there
// has gone, made.
func (cs *columns) withdraw(c, i int) {
	m := cs.m
	row, val := cs.bestRow[c*m:c*m+m], cs.bestVal[c*m:c*m+m]
	need := cs.need[:0]
	for l := range m {
		if row[l] == i {
			row[l], val[l] = -1, math.Inf(1)
			need = append(need, l)
		}
	}
	cs.need = need
	if len(need) == 0 {
		return
	}
	rs := cs.rows[c][:0]
	for _, k := range cs.rows[c] {
		f := cs.f[k*m+c]
		if f == 0 {
			cs.member[k*m+c] = false
			continue
		}
		rs = append(rs, k)
		if f <= cs.tol {
			continue
		}
		dk := cs.d[k*m : k*m+m]
		for _, l := range need {
			if v := dk[l] - dk[c]; v < val[l] {
				val[l], row[l] = v, k
			}
		}
	}
	cs.rows[c] = rs
}

// move changes row i's flow at column c by v, keeping the lists and arcs.
func (cs *columns) move(i, c int, v float64) {
	m := cs.m
	at := i*m + c
	was := cs.f[at]
	cs.f[at] += v
	cs.a[c] += v
	if !cs.member[at] {
		cs.member[at] = true
		cs.rows[c] = append(cs.rows[c], i)
	}
	switch now := cs.f[at]; {
	case was <= cs.tol && now > cs.tol:
		cs.offer(c, i)
	case was > cs.tol && now <= cs.tol:
		cs.withdraw(c, i)
	}
}

// openTrial gives the trial column capacity c (before the first trial).
func (cs *columns) openTrial(c float64) { cs.caps[cs.m-1] = c }

// trial makes the trial column's costs those of site j (dist from each row),
// keeping the flow optimal: rows at the column that it no longer suits go
// to the column that suits them best, for solve to settle.
func (cs *columns) trial(p *Problem, j int) {
	m, J, t := cs.m, cs.m-1, cs.m
	for i, s := range cs.src {
		cs.d[i*m+J] = p.dist(s, j)
	}
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
		v := cs.f[i*m+J]
		if v == 0 {
			continue
		}
		hs, bc := math.Inf(-1), -1
		for c := range J {
			if x := cs.pi[c] - cs.d[i*m+c]; x > hs {
				hs, bc = x, c
			}
		}
		if piJ-cs.d[i*m+J] >= hs-admissible {
			continue
		}
		cs.f[i*m+J] = 0
		cs.a[J] -= v
		cs.move(i, bc, v)
	}
	cs.refresh(J)
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
func (cs *columns) solve(h *halt) {
	V := cs.m + 1
	for !cs.broken {
		if h.spend(V * V) {
			return
		}
		any := false
		for v := range V {
			cs.dist[v], cs.prev[v], cs.done[v] = math.Inf(1), -1, false
			if cs.imbalance(v) > cs.tol {
				cs.dist[v] = 0
				any = true
			}
		}
		if !any {
			return
		}
		cs.rounds++
		found := -1
		for {
			u, du := -1, math.Inf(1)
			for v := range V {
				if !cs.done[v] && cs.dist[v] < du {
					u, du = v, cs.dist[v]
				}
			}
			if u < 0 {
				break
			}
			cs.done[u] = true
			if cs.imbalance(u) < -cs.tol {
				found = u
				break
			}
			cs.relax(u, du)
		}
		if found < 0 {
			cs.broken = true
			return
		}
		df := cs.dist[found]
		for v := range V {
			cs.pi[v] += math.Min(cs.dist[v], df)
		}
		cs.augment(found)
	}
}

// relax lowers the distance of every node that an arc out of u reaches.
func (cs *columns) relax(u int, du float64) {
	m, t := cs.m, cs.m
	dist, done, prev, pi := cs.dist, cs.done, cs.prev, cs.pi
	if u == t {
		for c := range m {
			if cs.tf[c] > cs.tol && !done[c] {
				if nd := du + pi[t] - pi[c]; nd < dist[c]-1e-12 {
					dist[c], prev[c] = nd, u
				}
			}
		}
		return
	}
	base := du + pi[u]
	rows, vals := cs.bestRow[u*m:u*m+m], cs.bestVal[u*m:u*m+m]
	for l := range m {
		if rows[l] >= 0 && !done[l] {
			if nd := base + vals[l] - pi[l]; nd < dist[l]-1e-12 {
				dist[l], prev[l] = nd, u
			}
		}
	}
	if cs.tf[u] < cs.caps[u]-cs.tol && !done[t] {
		if nd := base - pi[t]; nd < dist[t]-1e-12 {
			dist[t], prev[t] = nd, u
		}
	}
}

// augment pushes as much as the path found last (ending at node end) can
// carry.
func (cs *columns) augment(end int) {
	m, t := cs.m, cs.m
	cs.path = cs.path[:0]
	v := end
	for cs.prev[v] >= 0 {
		u := cs.prev[v]
		r := -1
		if u != t && v != t {
			r = cs.bestRow[u*m+v]
		}
		cs.path = append(cs.path, pathStep{u, v, r})
		v = u
	}
	d := math.Min(cs.imbalance(v), -cs.imbalance(end))
	for _, s := range cs.path {
		switch {
		case s.v == t:
			d = math.Min(d, cs.caps[s.u]-cs.tf[s.u])
		case s.u == t:
			d = math.Min(d, cs.tf[s.v])
		default:
			d = math.Min(d, cs.f[s.r*m+s.u])
		}
	}
	for _, s := range cs.path {
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
}

// value is the flow's total cost (rate x ms), +Inf when it could not be
// completed.
func (cs *columns) value() float64 {
	if cs.broken {
		return math.Inf(1)
	}
	m, total := cs.m, 0.0
	for c, rs := range cs.rows {
		for _, i := range rs {
			total += cs.f[i*m+c] * cs.d[i*m+c]
		}
	}
	return total
}
