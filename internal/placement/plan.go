package placement

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// Plan is ning's planner: a fast heuristic for any size of cluster.
//
// Without a per-replica rate limit the cost depends only on which sites hold a
// replica (the p-median problem): a greedy construction opens, one at a time,
// the site that most lowers the cost, then a vertex-substitution local search
// (close one site, open another) runs until no swap helps. With a limit, the
// replica counts matter: the start is the rounded min-cost transport and a local
// search moves single replicas between sites (polish, then on problems up to
// MoveSearchSites the best single move at a time). Every baseline is polished by
// the same local search when it beats the construction, so the plan is never
// worse than a baseline. Replicas that do not lower the cost go where they share the
// most traffic (D'Hondt over the traffic each site serves), so they balance load.
//
// Local search alone can stop well above the optimum where RTTs break the
// triangle rule, as internet routing does (up to 39 % on uniformly random
// RTTs). So Plan returns the exact optimum wherever enumerating it fits a small
// budget (PlanExactSets, PlanExactPlacements: every problem of up to 16 sites
// without a rate limit), and beyond that perturbs its best plan and searches
// again (an iterated local search) for as many rounds as perturbRounds allows
// at that size. The rounds use a generator seeded from the problem's size, so
// the same problem always gets the same plan.
//
// Plan stops soon after ctx ends (within a millisecond or so of work) and
// returns ctx.Err() wrapped, with the cause when there is one.
func Plan(ctx context.Context, p *Problem) (Placement, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	h := newHalt(ctx)
	x := p.plan(h)
	if err := h.err(fmt.Sprintf("planning %d replicas over %d sites", p.Replicas, len(p.Sites))); err != nil {
		return nil, err
	}
	return x, nil
}

// plan is Plan on a valid problem; once h stops, it returns nil.
func (p *Problem) plan(h *halt) Placement {
	var start Placement
	if p.capacitated() {
		start = p.roundedTransport(h)
	} else {
		start = p.greedyMedian(h)
	}
	best := p.improve(h, start)
	bestCost := p.cost(h, best)
	for _, name := range baselineNames {
		if h.stopped() {
			return nil
		}
		b := baselines[name](p)
		if p.cost(h, b) < bestCost-eps*math.Max(1, bestCost) {
			best = p.improve(h, b)
			bestCost = p.cost(h, best)
		}
	}
	if p.capacitated() && !h.stopped() {
		// A second start: the plan without the rate limit, which often sits in
		// another basin of the single-move search.
		free := *p
		free.PerReplicaRPS = 0
		if y := p.improve(h, free.improve(h, free.greedyMedian(h))); p.cost(h, y) < bestCost-eps*math.Max(1, bestCost) {
			best, bestCost = y, p.cost(h, y)
		}
	}
	if h.stopped() {
		return nil
	}
	if opt, err := p.optimal(h, PlanExactSets, PlanExactPlacements); err == nil {
		if p.cost(h, opt) < bestCost-eps*math.Max(1, bestCost) {
			return opt
		}
		return best
	}
	return p.perturbed(h, best, bestCost)
}

// The exact optimum's budget inside Plan, in candidate placements: a few
// milliseconds on this project's 2-core machines.
const (
	PlanExactSets       = 20_000
	PlanExactPlacements = 1_000
)

// perturbRounds is how many perturbation rounds Plan spends on a problem of n
// sites: 32 up to 64 sites (48 without a rate limit), shrinking with the square
// of the size beyond, so that large clusters plan as fast as before (none from
// about 360 sites, or 23 with a rate limit, where every cost is a transport).
func (p *Problem) perturbRounds() int {
	n := len(p.Sites)
	if p.capacitated() {
		return min(4, 4*16*16/max(1, n*n))
	}
	return min(100, 32*64*64/max(1, n*n))
}

// perturbed is the iterated local search: from the best plan so far, move two
// random replicas to random sites with room, search again, and keep the result
// when it costs less.
func (p *Problem) perturbed(h *halt, best Placement, bestCost float64) Placement {
	rounds := p.perturbRounds()
	if rounds == 0 {
		return best
	}
	n := len(p.Sites)
	rng := rand.New(rand.NewPCG(uint64(n), uint64(p.Replicas)))
	x := make(Placement, n)
	for range rounds {
		if h.stopped() {
			return nil
		}
		copy(x, best)
		for range 1 + rng.IntN(3) {
			from, to := rng.IntN(n), rng.IntN(n)
			if from != to && x[from] > p.min(from) && p.room(x, to) {
				x[from]--
				x[to]++
			}
		}
		y := p.improve(h, x)
		if c := p.cost(h, y); c < bestCost-eps*math.Max(1, bestCost) {
			best, bestCost = y, c
		}
	}
	return best
}

// improve runs the local search that fits the problem and, without a rate
// limit, re-deals the replicas that do not change the cost. With a limit it
// polishes, then runs the single-move search where that search is affordable
// (up to MoveSearchSites sites) or where polish cannot price a lone removal
// (the replicas cannot absorb all traffic).
func (p *Problem) improve(h *halt, x Placement) Placement {
	if h.stopped() {
		return x
	}
	if p.capacitated() {
		y := p.polish(h, x)
		if len(x) <= MoveSearchSites || p.capScale(x.Total()) > 1 {
			y = p.moveSearch(h, y)
		}
		return y
	}
	return p.balance(h, p.swapSearch(h, x))
}

// base returns the placement with each site at its minimum.
func (p *Problem) base() Placement {
	x := make(Placement, len(p.Sites))
	for i := range x {
		x[i] = p.min(i)
	}
	return x
}

// greedyMedian opens sites one at a time, each time the one whose first
// replica lowers the total cost the most, until no replica is left or no site
// helps; the rest are dealt by balance.
func (p *Problem) greedyMedian(h *halt) Placement {
	x := p.base()
	if h.stopped() {
		return x
	}
	n := len(x)
	dc := p.distCols()
	// Per site with traffic, the distance to its nearest replica.
	all := p.nearestAll(x)
	near := make([]float64, len(dc.src))
	for k, i := range dc.src {
		near[k] = all[i]
	}
	for left := p.Replicas - x.Total(); left > 0; left-- {
		bestJ, bestGain := -1, eps
		for j := 0; j < n; j++ {
			if x[j] > 0 || !p.room(x, j) {
				continue
			}
			if h.spend(len(p.Traffic)) {
				return x
			}
			gain := 0.0
			for k, d := range dc.col(j) {
				if d < near[k] {
					gain += dc.w[k] * (near[k] - d)
				}
			}
			if gain > bestGain {
				bestJ, bestGain = j, gain
			}
		}
		if bestJ < 0 {
			break
		}
		x[bestJ]++
		for k, d := range dc.col(bestJ) {
			near[k] = math.Min(near[k], d)
		}
	}
	return p.balance(h, x)
}

// balance keeps the set of sites that hold replicas and deals every replica
// above the sites' minimums and first replicas by D'Hondt over the traffic each
// site serves: the next replica goes to the site with the most served traffic
// per replica, ties to the site with fewer replicas, then the earlier site.
// Replicas not yet placed are dealt the same way.
func (p *Problem) balance(h *halt, x Placement) Placement {
	if h.stopped() {
		return x
	}
	served := p.served(x)
	out := p.base()
	for j, v := range x {
		if v > 0 && out[j] == 0 {
			out[j] = 1
		}
	}
	open := make([]bool, len(x))
	anyOpen := false
	for j, v := range out {
		open[j] = v > 0
		anyOpen = anyOpen || open[j]
	}
	for left := p.Replicas - out.Total(); left > 0; left-- {
		if h.spend(len(out)) {
			return out
		}
		bestJ := -1
		for j := range out {
			if (anyOpen && !open[j]) || !p.room(out, j) {
				continue
			}
			if bestJ < 0 || p.dhondtBefore(served, out, j, bestJ) {
				bestJ = j
			}
		}
		if bestJ < 0 { // the open sites are full: open the next best site
			for j := range out {
				if p.room(out, j) && (bestJ < 0 || p.dhondtBefore(served, out, j, bestJ)) {
					bestJ = j
				}
			}
		}
		if bestJ < 0 {
			break
		}
		out[bestJ]++
	}
	return out
}

// dhondtBefore reports whether site a should get the next replica before site b.
func (p *Problem) dhondtBefore(served []float64, x Placement, a, b int) bool {
	qa, qb := served[a]/float64(x[a]+1), served[b]/float64(x[b]+1)
	if math.Abs(qa-qb) > eps*math.Max(1, math.Max(qa, qb)) {
		return qa > qb
	}
	if x[a] != x[b] {
		return x[a] < x[b]
	}
	return a < b
}

// swapSearch is the vertex-substitution local search for the problem without a
// rate limit: while moving a replica to a site without one (closing its old
// site if it was the last there) lowers the cost, do the best such move.
// Whitaker's fast interchange keeps, per traffic site, the nearest and
// second-nearest open site, so one pass over all moves costs
// O(sites x traffic sites) instead of O(open x sites x traffic sites).
func (p *Problem) swapSearch(h *halt, x Placement) Placement {
	if h.stopped() {
		return x
	}
	x = append(Placement(nil), x...)
	n := len(x)
	var demand []int
	for i, wi := range p.Traffic {
		if wi > 0 {
			demand = append(demand, i)
		}
	}
	if len(demand) == 0 {
		return x
	}
	near1 := make([]int, n)
	d1 := make([]float64, n)
	d2 := make([]float64, n)
	update := func() {
		if h.spend(len(demand) * n) {
			return
		}
		for _, i := range demand {
			near1[i], d1[i], d2[i] = -1, UnknownRTTPenaltyMs, UnknownRTTPenaltyMs
			for j, v := range x {
				if v == 0 {
					continue
				}
				d := p.dist(i, j)
				if near1[i] < 0 || d < d1[i] {
					near1[i], d1[i], d2[i] = j, d, d1[i]
				} else if d < d2[i] {
					d2[i] = d
				}
			}
		}
	}
	update()
	loss := make([]float64, n) // extra cost of closing each site, given the candidate
	minGain := eps * math.Max(1, p.TotalTraffic())
	for iter := 0; iter < 10*n; iter++ {
		bestGain, bestOut, bestIn := minGain, -1, -1
		for in := 0; in < n; in++ {
			if x[in] > 0 || !p.room(x, in) {
				continue
			}
			if h.spend(len(demand) + n) {
				return x
			}
			gain := 0.0
			clear(loss)
			for _, i := range demand {
				w, d := p.Traffic[i], p.dist(i, in)
				if d < d1[i] {
					gain += w * (d1[i] - d)
				} else {
					// If its nearest site closes, i falls back to the second
					// nearest or to the new site, whichever is closer.
					loss[near1[i]] += w * (math.Min(d2[i], d) - d1[i])
				}
			}
			for out := 0; out < n; out++ {
				if x[out] <= p.min(out) {
					continue
				}
				g := gain
				if x[out] == 1 { // moving its last replica closes the site
					g -= loss[out]
				}
				if g > bestGain {
					bestGain, bestOut, bestIn = g, out, in
				}
			}
		}
		if bestOut < 0 {
			break
		}
		x[bestOut]--
		x[bestIn]++
		update()
	}
	return x
}

// MaxMoveEvaluations bounds the cost evaluations (each a min-cost transport)
// of one rate-limited local search, so that planning a large cluster stays fast.
const MaxMoveEvaluations = 4000

// moveSearch is the local search with a rate limit: while moving one replica
// from one site to another lowers the cost, make the best such move. On large
// problems only the 8 nearest sites are tried as destinations, within
// MaxMoveEvaluations.
func (p *Problem) moveSearch(h *halt, x Placement) Placement {
	if h.stopped() {
		return x
	}
	x = append(Placement(nil), x...)
	n := len(x)
	const neighbours = 8
	var near [][]int
	if n > 2*neighbours {
		near = make([][]int, n)
		for a := range near {
			if h.spend(8 * n) {
				return x
			}
			order := make([]int, n)
			for j := range order {
				order[j] = j
			}
			sort.SliceStable(order, func(u, v int) bool { return p.dist(a, order[u]) < p.dist(a, order[v]) })
			near[a] = order[1 : neighbours+1]
		}
	}
	w := p.TotalTraffic()
	if w <= 0 || x.Total() == 0 {
		return x // every move costs the same
	}
	// One flow, kept solved for x; each move is a trial on it.
	scale := p.capScale(x.Total())
	fl := newFlow(h, p, p.replicaCaps(x))
	cur := fl.value() / w
	budget := MaxMoveEvaluations
	// Per iteration, the Lagrangian bound (flow.knapsack) of each move: the
	// rise in cost that taking a replica from a site can bring at least, and
	// the fall that adding one can bring at most. A move whose bound cannot
	// beat the best found is not tried: the search makes the same moves as
	// one that tries them all, with fewer trials.
	down, up := make([]float64, n), make([]float64, n)
	var items []knapItem
	type move struct {
		from, to, order int
		bound           float64
	}
	var moves []move
	var promising []int
	for iter := 0; iter < 4*p.Replicas+n && budget > 0; iter++ {
		for j := range n {
			if h.spend(len(fl.src)) {
				return x
			}
			down[j], up[j], items = p.moveBounds(fl, x, scale, j, items)
		}
		// Beyond the nearest sites, the sites where a replica could help
		// most by the bound: far moves the nearest ones miss.
		promising = promising[:0]
		if near != nil {
			for j := range n {
				if up[j] < 0 {
					promising = append(promising, j)
				}
			}
			slices.SortStableFunc(promising, func(a, b int) int {
				return cmp.Compare(up[a], up[b])
			})
			promising = promising[:min(len(promising), neighbours)]
		}
		moves = moves[:0]
		for from := 0; from < n; from++ {
			if x[from] <= p.min(from) {
				continue
			}
			add := func(to int) {
				if to != from && p.room(x, to) {
					moves = append(moves, move{from, to, len(moves), cur + (down[from]+up[to])/w})
				}
			}
			if near == nil {
				for to := 0; to < n; to++ {
					add(to)
				}
			} else {
				for _, to := range near[from] {
					add(to)
				}
				for _, to := range promising {
					if !slices.Contains(near[from], to) {
						add(to)
					}
				}
			}
		}
		slices.SortStableFunc(moves, func(a, b move) int {
			return cmp.Compare(a.bound, b.bound)
		})
		bestCost, bestFrom, bestTo, bestOrder := cur-eps*math.Max(1, cur), -1, -1, len(moves)
		slack := 1e-9 * math.Max(1, math.Abs(cur))
		for _, m := range moves {
			if m.bound > bestCost+slack {
				break
			}
			budget--
			fl.mark()
			p.moveReplica(h, fl, x, scale, m.from, m.to)
			c := fl.value() / w
			fl.rollback()
			if h.stopped() {
				return x
			}
			// The first in site order among equal costs, as a search that
			// tries every move in order would pick.
			if c < bestCost-slack || (c < bestCost+slack && bestFrom >= 0 && m.order < bestOrder) || (c < bestCost && bestFrom < 0) {
				bestCost, bestFrom, bestTo, bestOrder = c, m.from, m.to, m.order
			}
		}
		if bestFrom < 0 {
			break
		}
		p.moveReplica(h, fl, x, scale, bestFrom, bestTo)
		x[bestFrom]--
		x[bestTo]++
		cur = bestCost
	}
	return x
}

// moveReplica re-solves fl, solved for x at this scale, with one replica
// moved from site from to site to (x itself is left as it is).
func (p *Problem) moveReplica(h *halt, fl *flow, x Placement, scale float64, from, to int) {
	fl.setCap(from, p.capOf(x[from]-1, scale))
	fl.setCap(to, p.capOf(x[to]+1, scale))
	fl.solve(h)
}

// moveBounds is the Lagrangian bound (flow.knapsack) of one replica more or
// less at site j, with fl solved for x at this scale: the least rise in cost
// that taking one from j can bring (+Inf when j holds its minimum) and the
// largest fall that adding one can bring (0 when j has no room).
func (p *Problem) moveBounds(fl *flow, x Placement, scale float64, j int, items []knapItem) (down, up float64, _ []knapItem) {
	items = fl.knapsack(j, items)
	v := knapValue(items, p.capOf(x[j], scale))
	down, up = math.Inf(1), 0
	if x[j] > p.min(j) {
		down = knapValue(items, p.capOf(x[j]-1, scale)) - v
	}
	if p.room(x, j) {
		up = knapValue(items, p.capOf(x[j]+1, scale)) - v
	}
	return down, up, items
}

// MoveSearchSites is the largest problem whose polished plan the single-move
// search goes on to improve. Beyond it, that search spends its whole budget
// (seconds at 1,000 sites) for gains polish has already made: at 1,000 sites
// polish alone ends within 0.2 % of the lower bound (bench/report.md).
const MoveSearchSites = 100

// MaxPolishRounds bounds polish's rounds: each prices every site twice.
const MaxPolishRounds = 64

// polishMovesPerSite is how many destinations polish ranks per site it
// takes a replica from: its cheapest ones by price.
const polishMovesPerSite = 16

// polish is the rate-limited search's first pass, for the many moves the
// single best-move search has no budget for on large problems. Each round
// prices, with one exact re-solve each, one more replica at every site with
// room and one fewer at every site above its minimum (except where the
// Lagrangian bound shows that price cannot make a move that lowers the
// cost); ranks the moves from one site to another by the sum of the two
// prices; and tries them in that order, each against the flow as it now
// stands, keeping every one that lowers the cost, with each site in at most
// one move a round. Rounds repeat until one keeps nothing. Only moves that
// lower the cost are kept, so the result is never worse than x.
func (p *Problem) polish(h *halt, x Placement) Placement {
	x = append(Placement(nil), x...)
	n := len(x)
	w := p.TotalTraffic()
	if h.stopped() || w <= 0 || x.Total() == 0 {
		return x
	}
	scale := p.capScale(x.Total())
	fl := newFlow(h, p, p.replicaCaps(x))
	// price is the change in cost of giving site j d more replicas.
	price := func(j, d int) float64 {
		fl.mark()
		fl.setCap(j, p.capOf(x[j]+d, scale))
		fl.solve(h)
		c := fl.value()
		fl.rollback()
		return c
	}
	up, down := make([]float64, n), make([]float64, n)
	var froms, tos []int
	type move struct {
		from, to int
		gain     float64
	}
	var moves []move
	used := make([]bool, n)
	var items []knapItem
	for range MaxPolishRounds {
		cur := fl.value()
		tol := eps * math.Max(1, cur)
		froms, tos = froms[:0], tos[:0]
		// The Lagrangian bounds first (moveBounds): a site whose bound says
		// one more replica cannot lower the cost, or one fewer cannot pair
		// with the best addition, is not priced, and the moves are those a
		// pricing of every site finds.
		best := 0.0 // the lowest price of one more replica
		for j := range n {
			if h.spend(len(fl.src)) {
				return x
			}
			var upBound float64
			down[j], upBound, items = p.moveBounds(fl, x, scale, j, items)
			up[j] = 0
			if upBound < -tol {
				if up[j] = price(j, 1) - cur; up[j] < -tol {
					tos = append(tos, j)
					best = math.Min(best, up[j])
				}
			}
		}
		for j := range n {
			if h.stopped() {
				return x
			}
			if math.IsInf(down[j], 1) || down[j]+best >= -tol {
				continue
			}
			// When the replicas cannot absorb all traffic, no site can lose
			// one alone: its price is then the bound.
			if d := price(j, -1) - cur; !math.IsInf(d, 1) {
				down[j] = d
			}
			froms = append(froms, j)
		}
		slices.SortStableFunc(tos, func(a, b int) int { return cmp.Compare(up[a], up[b]) })
		slices.SortStableFunc(froms, func(a, b int) int { return cmp.Compare(down[a], down[b]) })
		// The moves whose prices sum below zero, the best few per site.
		moves = moves[:0]
		for _, from := range froms {
			k := 0
			for _, to := range tos {
				if down[from]+up[to] >= -tol || k == polishMovesPerSite {
					break
				}
				if to != from {
					moves = append(moves, move{from, to, down[from] + up[to]})
					k++
				}
			}
		}
		slices.SortStableFunc(moves, func(a, b move) int { return cmp.Compare(a.gain, b.gain) })
		clear(used)
		kept := 0
		for _, m := range moves {
			if used[m.from] || used[m.to] {
				continue
			}
			fl.mark()
			p.moveReplica(h, fl, x, scale, m.from, m.to)
			if h.stopped() {
				return x
			}
			if c := fl.value(); c < cur-tol {
				fl.commit()
				x[m.from]--
				x[m.to]++
				cur = c
				used[m.from], used[m.to] = true, true
				kept++
				continue
			}
			fl.rollback()
		}
		if kept == 0 {
			break
		}
	}
	return x
}

// roundedTransport starts the rate-limited search: route all traffic at least
// cost with every site able to host up to its capacity, give each site the
// replicas it needs for what it absorbs, then add or remove replicas to match.
func (p *Problem) roundedTransport(h *halt) Placement {
	n := len(p.Sites)
	caps := make([]float64, n)
	for j := range caps {
		c := p.Capacity[j]
		if c == Unlimited {
			c = p.Replicas
		}
		caps[j] = p.PerReplicaRPS * float64(c)
	}
	_, absorbed := p.transport(h, caps)
	if h.stopped() {
		return p.base()
	}
	x := p.base()
	for j, a := range absorbed {
		need := int(math.Ceil(a/p.PerReplicaRPS - 1e-6))
		if need > x[j] {
			x[j] = need
		}
		if p.Capacity[j] != Unlimited && x[j] > p.Capacity[j] {
			x[j] = p.Capacity[j]
		}
	}
	// Too many: take from the sites that use their last replica the least.
	for x.Total() > p.Replicas {
		bestJ, bestSlack := -1, math.Inf(-1)
		for j := range x {
			if x[j] <= p.min(j) {
				continue
			}
			if slack := float64(x[j])*p.PerReplicaRPS - absorbed[j]; slack > bestSlack {
				bestJ, bestSlack = j, slack
			}
		}
		x[bestJ]--
	}
	// Too few: D'Hondt over absorbed traffic.
	for x.Total() < p.Replicas {
		bestJ := -1
		for j := range x {
			if p.room(x, j) && (bestJ < 0 || p.dhondtBefore(absorbed, x, j, bestJ)) {
				bestJ = j
			}
		}
		x[bestJ]++
	}
	return x
}
