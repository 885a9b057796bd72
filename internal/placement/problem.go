// Package placement decides where a workload's replicas belong: the delay
// constraint filter, the load filter and score, the replica planner (heuristic,
// exact and baselines, all judged by one cost function) and the incremental
// score the scheduler uses. It does no I/O.
package placement

import (
	"errors"
	"fmt"
	"math"
)

// UnknownRTTPenaltyMs is the RTT charged for a site pair whose RTT is unknown:
// large enough that the planner only routes traffic over such a pair when no
// known path exists, finite so that costs still compare.
const UnknownRTTPenaltyMs = 100_000.0

// Unlimited marks a site without a replica capacity limit.
const Unlimited = -1

// Problem is one workload to place over a set of sites.
type Problem struct {
	// Sites names the sites; every other slice is indexed like it.
	Sites []string
	// Traffic is the request rate entering at each site (any consistent unit).
	Traffic []float64
	// Capacity is the most replicas each site can host, or Unlimited.
	Capacity []int
	// Min is the fewest replicas each site must keep; nil means none.
	Min []int
	// RTT[i][j] is the RTT in ms from traffic site i to replica site j; +Inf
	// means unknown.
	RTT [][]float64
	// Replicas is how many replicas to place.
	Replicas int
	// PerReplicaRPS is how much traffic one replica serves; 0 means no limit.
	PerReplicaRPS float64
}

// Placement is the number of replicas at each site, indexed like Problem.Sites.
type Placement []int

// Total returns the number of replicas placed.
func (x Placement) Total() int {
	n := 0
	for _, v := range x {
		n += v
	}
	return n
}

// Map returns the placement keyed by site name, without empty sites.
func (x Placement) Map(sites []string) map[string]int {
	out := map[string]int{}
	for i, v := range x {
		if v > 0 {
			out[sites[i]] = v
		}
	}
	return out
}

// Validate checks that the problem is well formed and feasible.
func (p *Problem) Validate() error {
	n := len(p.Sites)
	if n == 0 {
		return errors.New("no sites")
	}
	if len(p.Traffic) != n || len(p.Capacity) != n || len(p.RTT) != n || (p.Min != nil && len(p.Min) != n) {
		return fmt.Errorf("%d sites but %d traffic, %d capacity, %d min and %d RTT rows",
			n, len(p.Traffic), len(p.Capacity), len(p.Min), len(p.RTT))
	}
	if p.Replicas < 0 {
		return fmt.Errorf("replicas: %d is negative", p.Replicas)
	}
	if math.IsNaN(p.PerReplicaRPS) || math.IsInf(p.PerReplicaRPS, 0) || p.PerReplicaRPS < 0 {
		return fmt.Errorf("per-replica rate %v is not a finite non-negative number", p.PerReplicaRPS)
	}
	room, mins := 0, 0
	for i := range p.Sites {
		if len(p.RTT[i]) != n {
			return fmt.Errorf("RTT row %s has %d entries, want %d", p.Sites[i], len(p.RTT[i]), n)
		}
		if w := p.Traffic[i]; math.IsNaN(w) || math.IsInf(w, 0) || w < 0 {
			return fmt.Errorf("site %s: traffic %v is not a finite non-negative number", p.Sites[i], w)
		}
		for j, d := range p.RTT[i] {
			if math.IsNaN(d) || d < 0 {
				return fmt.Errorf("RTT %s -> %s: %v is not a non-negative number", p.Sites[i], p.Sites[j], d)
			}
		}
		c := p.Capacity[i]
		switch {
		case c == Unlimited:
			room = p.Replicas
		case c < 0:
			return fmt.Errorf("site %s: capacity %d is negative", p.Sites[i], c)
		case room < p.Replicas:
			room += c
		}
		m := p.min(i)
		if m < 0 {
			return fmt.Errorf("site %s: minimum %d is negative", p.Sites[i], m)
		}
		if c != Unlimited && m > c {
			return fmt.Errorf("site %s: minimum %d is more than its capacity %d", p.Sites[i], m, c)
		}
		mins += m
	}
	if room < p.Replicas {
		return fmt.Errorf("only %d of %d replicas fit in the sites' capacity", room, p.Replicas)
	}
	if mins > p.Replicas {
		return fmt.Errorf("the sites' minimums add up to %d, more than the %d replicas", mins, p.Replicas)
	}
	return nil
}

func (p *Problem) min(i int) int {
	if p.Min == nil {
		return 0
	}
	return p.Min[i]
}

// room reports whether site j can take one more replica beyond x[j].
func (p *Problem) room(x Placement, j int) bool {
	return p.Capacity[j] == Unlimited || x[j] < p.Capacity[j]
}

// TotalTraffic is the sum of all sites' traffic.
func (p *Problem) TotalTraffic() float64 {
	w := 0.0
	for _, v := range p.Traffic {
		w += v
	}
	return w
}

// dist is the RTT used for optimisation: unknown is the finite penalty.
func (p *Problem) dist(i, j int) float64 {
	if d := p.RTT[i][j]; !math.IsInf(d, 1) {
		return d
	}
	return UnknownRTTPenaltyMs
}

// distCols is dist laid out for the hot loops of the construction and the
// bound: by site j, the distances from the sites with traffic, contiguous and
// with unknown RTTs already the finite penalty, so that a pass over one site's
// column reads memory in order and tests nothing.
type distCols struct {
	src []int     // the sites with traffic, in order
	w   []float64 // their traffic
	d   []float64 // dist(src[k], j) at [j*len(src)+k]
}

func (p *Problem) distCols() *distCols {
	c := &distCols{}
	for i, wi := range p.Traffic {
		if wi > 0 {
			c.src = append(c.src, i)
			c.w = append(c.w, wi)
		}
	}
	S := len(c.src)
	c.d = make([]float64, len(p.Sites)*S)
	for k, i := range c.src {
		for j := range p.Sites {
			c.d[j*S+k] = p.dist(i, j)
		}
	}
	return c
}

// col is site j's column: the distance to j from each site with traffic.
func (c *distCols) col(j int) []float64 {
	S := len(c.src)
	return c.d[j*S : (j+1)*S]
}

// capacitated reports whether replicas have a serving limit.
func (p *Problem) capacitated() bool { return p.PerReplicaRPS > 0 }
