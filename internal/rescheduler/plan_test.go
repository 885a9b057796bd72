package rescheduler

import (
	"math/rand/v2"
	"testing"

	"github.com/ning-edge/ning/internal/placement"
)

// line is three sites in a row, 20 ms apart.
func line(traffic ...float64) *placement.Problem {
	return &placement.Problem{
		Sites:   []string{"a", "b", "c"},
		Traffic: traffic,
		RTT:     [][]float64{{0, 20, 40}, {20, 0, 20}, {40, 20, 0}},
	}
}

// served is line with a per-replica rate: replica counts matter.
func served(perReplicaRPS float64, traffic ...float64) *placement.Problem {
	p := line(traffic...)
	p.PerReplicaRPS = perReplicaRPS
	return p
}

func all(n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = true
	}
	return out
}

func TestNextMove(t *testing.T) {
	tests := []struct {
		name    string
		prob    *placement.Problem
		current placement.Placement
		usable  []bool
		minKeep int
		// capacity, when set, is the sites' limits (policy.SiteLimits.Apply).
		capacity    []int
		minOccupied int
		wantOK      bool
		from, to    string
	}{
		{name: "traffic moved from a to c", prob: line(0, 0, 100), current: placement.Placement{3, 0, 0},
			usable: all(3), minKeep: 1, wantOK: true, from: "a", to: "c"},
		{name: "already where the traffic is", prob: line(0, 0, 100), current: placement.Placement{0, 0, 3},
			usable: all(3), minKeep: 1},
		{name: "the last pod of a site with traffic stays", prob: line(10, 0, 100), current: placement.Placement{1, 0, 1},
			usable: all(3), minKeep: 1},
		{name: "surplus beyond the minimum moves", prob: line(10, 0, 100), current: placement.Placement{2, 0, 0},
			usable: all(3), minKeep: 1, wantOK: true, from: "a", to: "c"},
		{name: "no usable node at the traffic: next best", prob: line(0, 0, 100), current: placement.Placement{2, 0, 0},
			usable: []bool{true, true, false}, minKeep: 1, wantOK: true, from: "a", to: "b"},
		{name: "the traffic's site holds its limit: the next site in the planner's order", prob: served(40, 0, 0, 100), current: placement.Placement{2, 0, 1},
			usable: all(3), capacity: []int{placement.Unlimited, placement.Unlimited, 1}, wantOK: true, from: "a", to: "b"},
		{name: "limits below the replicas: no plan, no move", prob: served(40, 0, 0, 100), current: placement.Placement{2, 0, 1},
			usable: all(3), capacity: []int{1, 1, 0}},
		{name: "min per occupied site: a site without traffic keeps its last pod", prob: served(40, 0, 0, 100), current: placement.Placement{1, 0, 2},
			usable: all(3), minOccupied: 1},
		{name: "min per occupied site: the surplus still moves", prob: served(40, 0, 0, 100), current: placement.Placement{2, 0, 1},
			usable: all(3), minOccupied: 1, wantOK: true, from: "a", to: "c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.prob.Replicas = tc.current.Total()
			tc.prob.Capacity = tc.capacity
			m, why, ok, err := nextMove(t.Context(), tc.prob, tc.current, siteLimits{Usable: tc.usable, MinKeep: tc.minKeep, MinOccupied: tc.minOccupied})
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.wantOK {
				t.Fatalf("ok = %v (%s), want %v; move %+v", ok, why, tc.wantOK, m)
			}
			if !ok {
				return
			}
			if got := [2]string{tc.prob.Sites[m.From], tc.prob.Sites[m.To]}; got != [2]string{tc.from, tc.to} {
				t.Errorf("move %s -> %s, want %s -> %s", got[0], got[1], tc.from, tc.to)
			}
			if !(m.After < m.Before) || m.Planned > m.After {
				t.Errorf("costs before %v, after %v, planned %v: want planned <= after < before", m.Before, m.After, m.Planned)
			}
		})
	}
}

// TestMovesConverge applies nextMove, with the replacement placed where the
// scheduler's score says, until it stops: on random instances it must stop
// within a bounded number of moves, each strictly lowering the cost, and
// never evict below the minimum at a site with traffic. This is the
// no-evict/reschedule-loop property.
func TestMovesConverge(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := 0; i < 300; i++ {
		p := placement.RandomProblem(rng, placement.RandomOptions{Sites: 3 + rng.IntN(7), Replicas: 1 + rng.IntN(8)})
		if i%3 == 0 {
			p = placement.RandomProblem(rng, placement.RandomOptions{Sites: 3 + rng.IntN(5), Replicas: 2 + rng.IntN(5), PerReplicaShare: 0.3})
		}
		x := placement.Spread(p)
		usable := all(len(p.Sites))
		cost := p.Cost(x)
		moves := 0
		for {
			m, _, ok, err := nextMove(t.Context(), p, x, siteLimits{Usable: usable, MinKeep: 1})
			if err != nil {
				t.Fatalf("instance %d: %v", i, err)
			}
			if !ok {
				break
			}
			if p.Traffic[m.From] > 0 && x[m.From] <= 1 {
				t.Fatalf("instance %d: evicted the last pod of site %s, which has traffic", i, p.Sites[m.From])
			}
			x[m.From]--
			x[m.To]++
			if c := p.Cost(x); c >= cost {
				t.Fatalf("instance %d: move %d did not lower the cost (%v -> %v)", i, moves, cost, c)
			} else {
				cost = c
			}
			moves++
			if moves > 4*p.Replicas {
				t.Fatalf("instance %d: %d moves for %d replicas: not converging", i, moves, p.Replicas)
			}
		}
	}
}
