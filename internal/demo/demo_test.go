package demo

import (
	"strings"
	"testing"
)

// TestMeanRTTNeverThePenalty: a workload with no running replica has no
// weighted RTT; the summary gets an error naming it, never the planner's
// unknown-RTT penalty (100,000 ms) as a figure.
func TestMeanRTTNeverThePenalty(t *testing.T) {
	c := &Cluster{
		Sites:    []string{"a", "b"},
		RTT:      [][]float64{{0, 10}, {10, 0}},
		scenario: &scenario{},
		o:        &Options{Replicas: 2, PerReplicaRPS: 100},
	}
	c.scenario.set(map[string]float64{"a": 50, "b": 50})
	ms, err := c.MeanRTT(Workload, map[string]int{"a": 1, "b": 1})
	if err != nil || ms != 0 {
		t.Errorf("one replica at each site: %v, %v; want 0 ms", ms, err)
	}
	ms, err = c.MeanRTT(Workload, map[string]int{"a": 1})
	if err != nil || ms != 5 {
		t.Errorf("one replica at a: %v, %v; want 5 ms (half the traffic 10 ms away)", ms, err)
	}
	ms, err = c.MeanRTT(Workload, map[string]int{})
	if err == nil || !strings.Contains(err.Error(), "not known") {
		t.Errorf("no replica: %v ms, err %v; want an error saying the RTT is not known", ms, err)
	}
}
