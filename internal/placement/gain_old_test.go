package placement

// The rate-limited gains as MarginalGains computed them before the
// overloaded case moved to columns (a trial on the flow per site, every open
// site's capacity changed in each), kept to check the new method against.

// oldLimitedGains is limitedGains as it was: the transport for current is
// solved once, and one more replica at each site is a trial on it (when the
// replicas are overloaded, every site's capacity shrinks with the new scale,
// so the trial changes them all).
func (p *Problem) oldLimitedGains(h *halt, current Placement, gain []float64) {
	w := p.TotalTraffic()
	total := current.Total()
	if total == 0 {
		// One replica takes all traffic wherever it goes.
		for j := range gain {
			c := 0.0
			for i, wi := range p.Traffic {
				c += wi * p.dist(i, j)
			}
			gain[j] = UnknownRTTPenaltyMs - c/w
		}
		return
	}
	fl := newFlow(h, p, p.replicaCaps(current))
	base := fl.value() / w
	scale, next := p.capScale(total), p.capScale(total+1)
	if next != scale {
		// The replicas are overloaded: one more shrinks every site's
		// capacity, so each trial changes them all. (Solving once with the
		// new replica at a stand-in site and moving it in each trial was
		// tried: slower, the moved traffic comes by long chains.)
		var open []int
		for j, v := range current {
			if v > 0 {
				open = append(open, j)
			}
		}
		for j := range gain {
			if h.stopped() {
				return
			}
			fl.mark()
			for _, k := range open {
				if k != j {
					fl.setCap(k, p.capOf(current[k], next))
				}
			}
			fl.setCap(j, p.capOf(current[j]+1, next))
			fl.solve(h)
			gain[j] = base - fl.value()/w
			fl.rollback()
		}
		return
	}
	var items []knapItem
	movable := fl.movable()
	for j := range gain {
		if h.stopped() {
			return
		}
		// More capacity never costs more, and the Lagrangian bound
		// (flow.knapsack) says by how much it can lower the cost at most:
		// when by nothing, the gain is 0 without a trial.
		items = fl.knapsack(j, items)
		if h.spend(len(fl.src)) {
			return
		}
		c, c1 := p.capOf(current[j], scale), p.capOf(current[j]+1, scale)
		d := knapValue(items, c1) - knapValue(items, c)
		if d >= -fl.tol*eps {
			gain[j] = 0
			continue
		}
		// A site without flow whose knapsack is a flow: the bound is
		// the gain.
		if fl.absorbed[j] <= fl.tol && knapExact(items, c1, movable, fl.tol) {
			gain[j] = -d / w
			continue
		}
		fl.mark()
		fl.setCap(j, p.capOf(current[j]+1, scale))
		fl.solve(h)
		gain[j] = base - fl.value()/w
		fl.rollback()
	}
}
