package demo

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/dashboard"
)

// TestWriteTable prints the live table from two dashboard snapshots: the
// RTT column is from the busiest site, unknown RTTs and weighted RTTs print
// as "?", and the last decision is the workload's own.
func TestWriteTable(t *testing.T) {
	ning := dashboard.Snapshot{
		Sites: []dashboard.Site{
			{Name: "a", TrafficRPS: ptr.To(float64(100))},
			{Name: "b", TrafficRPS: ptr.To(float64(20))},
			{Name: "c"},
		},
		RTTMs:   [][]*float64{{nil, ptr.To(float64(10)), nil}, {ptr.To(float64(10)), nil, nil}, {nil, nil, nil}},
		Busiest: "a",
		Workloads: []dashboard.Workload{{Namespace: Namespace, Name: "web-5d9c7", Kind: "ReplicaSet", Deployment: Workload,
			Replicas: map[string]int{"a": 2, "b": 1}, WeightedRTTMs: ptr.To(1.5),
			LastDecision: &dashboard.Decision{Reason: "NingPlacement", Name: "web-5d9c7-x", Message: "placed in a"}}},
		Decisions: []dashboard.Decision{{Reason: "NingNodeDown", Name: "other", Message: "newer, about another pod"}},
	}
	def := dashboard.Snapshot{Workloads: []dashboard.Workload{{Namespace: Namespace, Name: "web-default-77f", Kind: "ReplicaSet",
		Deployment: DefaultWorkload, Replicas: map[string]int{"c": 3}}}}
	var out bytes.Buffer
	if err := writeTable(&out, ning, def); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"          site  RTT from a  req/s     web  web-default\n" +
		"             a           -    100      ##            .\n" +
		"             b      10.0ms     20       #            .\n" +
		"             c           ?      0       .          ###\n" +
		"  weighted RTT                     1.50ms            ?\n" +
		"last decision: NingPlacement web-5d9c7-x: placed in a\n\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}
