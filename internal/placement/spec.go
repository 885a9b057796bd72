package placement

import "github.com/ning-edge/ning/internal/topology"

// FromSpec turns a topology file into a problem: its sites, RTTs, traffic,
// capacities and minimums, with the given replicas and per-replica rate.
func FromSpec(spec *topology.Spec, replicas int, perReplicaRPS float64) *Problem {
	p := &Problem{
		Sites:         spec.SiteNames(),
		RTT:           spec.Matrix(),
		Replicas:      replicas,
		PerReplicaRPS: perReplicaRPS,
	}
	for _, s := range spec.Sites {
		p.Traffic = append(p.Traffic, s.Traffic)
		c := Unlimited
		if s.Capacity != nil {
			c = *s.Capacity
		}
		p.Capacity = append(p.Capacity, c)
		p.Min = append(p.Min, s.Min)
	}
	return p
}
