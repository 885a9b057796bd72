package placement

// The rate-limited gains by a trial per site on the flow, as MarginalGains
// computed them in the overloaded case before columns (every open site's
// capacity changed in each trial), kept to check the new method against.

// oldLimitedGains fills gain with each site's Gain under a rate limit: the
// transport for current is solved once, and one more replica at each site is
// a trial on it (when the replicas are overloaded, every site's capacity
// shrinks with the new scale, so the trial changes them all). Unlike
// limitedGains it tries every site, with no Lagrangian shortcut.
func (p *Problem) oldLimitedGains(h *halt, current Placement, gain []float64) {
	w := p.TotalTraffic()
	total := current.Total()
	if total == 0 {
		p.limitedGains(h, current, gain) // the closed form: no trial
		return
	}
	fl := newFlow(h, p, p.replicaCaps(current))
	base := fl.value() / w
	scale, next := p.capScale(total), p.capScale(total+1)
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
		if next != scale {
			for _, k := range open {
				if k != j {
					fl.setCap(k, p.capOf(current[k], next))
				}
			}
		}
		fl.setCap(j, p.capOf(current[j]+1, next))
		fl.solve(h)
		gain[j] = base - fl.value()/w
		fl.rollback()
	}
}
