package source

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/timestamppb"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/topology"
)

func rttReport(from, node, to string, ms float64) *ningv1.LatencyReport {
	return &ningv1.LatencyReport{SourceSite: from, SourceNode: node, Time: timestamppb.New(now.Add(-time.Second)),
		Targets: []*ningv1.TargetResult{{Site: to, Sent: 5, Received: 5, AvgMs: ms, MinMs: ms, MaxMs: ms, P50Ms: ms, P99Ms: ms}}}
}

// TestCrossCheck: issue 18's forged a -> c = 0.001 ms, with b and c having
// measured a 50 ms apart from c, is implausible: flagged (stored, counted)
// by default and refused in reject mode. A figure within the bounds, and
// one without evidence against it, pass.
func TestCrossCheck(t *testing.T) {
	witnesses := []*ningv1.LatencyReport{
		rttReport("b", "b-1", "a", 2), rttReport("b", "b-1", "c", 50), // b: a is 2 ms away, c 50 ms
		rttReport("c", "c-1", "a", 52), // c measured a itself
	}
	tests := []struct {
		name       string
		mode       string
		report     *ningv1.LatencyReport
		wantStored bool
		wantAction string // "" when plausible
		wantReject string
	}{
		{"forged 0.001 ms, flag mode", topology.CrossCheckFlag, rttReport("a", "a-1", "c", 0.001), true, "flagged", ""},
		{"forged 0.001 ms, reject mode", topology.CrossCheckReject, rttReport("a", "a-1", "c", 0.001), false, "rejected", topology.ReasonImplausibleRTT},
		{"forged 5000 ms, reject mode", topology.CrossCheckReject, rttReport("a", "a-1", "c", 5000), false, "rejected", topology.ReasonImplausibleRTT},
		{"real 49 ms, reject mode", topology.CrossCheckReject, rttReport("a", "a-1", "c", 49), true, "", ""},
		{"no evidence, reject mode", topology.CrossCheckReject, rttReport("a", "a-1", "d", 0.001), true, "", ""},
		{"off", topology.CrossCheckOff, rttReport("a", "a-1", "c", 0.001), true, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, store, _ := newSource(t, Config{CrossCheck: topology.CrossCheck{Mode: tt.mode}})
			for _, w := range witnesses {
				s.Handle("ning/v1/latency/"+w.GetSourceSite(), marshal(t, w))
			}
			s.Handle("ning/v1/latency/a", marshal(t, tt.report))
			to := tt.report.GetTargets()[0].GetSite()
			if _, ok := store.Link("a", to); ok != tt.wantStored {
				t.Errorf("a -> %s stored: %v, want %v", to, ok, tt.wantStored)
			}
			for _, action := range []string{"flagged", "rejected"} {
				want := 0.0
				if action == tt.wantAction {
					want = 1
				}
				if got := testutil.ToFloat64(s.implausible.WithLabelValues(action)); got != want {
					t.Errorf("ning_reports_implausible_total{action=%q} = %v, want %v", action, got, want)
				}
			}
			if tt.wantReject != "" {
				if got := testutil.ToFloat64(s.rejected.WithLabelValues(tt.wantReject)); got != 1 {
					t.Errorf("ning_reports_rejected_total{reason=%q} = %v, want 1", tt.wantReject, got)
				}
			}
		})
	}
}

// TestForgedLoadRefused: prober b, on its own topic, reports the load of a
// node of site a (issue 18's 99 % CPU that filtered a node out). With the
// cluster's node-to-site map the report is refused and the node's load
// stays unknown; b's own node's load is accepted.
func TestForgedLoadRefused(t *testing.T) {
	nodes := map[string]string{"a-1": "a", "b-1": "b"}
	s, store, _ := newSource(t, Config{NodeSite: func(n string) (string, bool) { site, ok := nodes[n]; return site, ok }})
	for _, tt := range []struct {
		node string
		want bool
	}{{"a-1", false}, {"ghost", false}, {"b-1", true}} {
		r := rttReport("b", tt.node, "c", 10)
		r.Load = &ningv1.NodeLoad{CpuUtilisation: 0.99}
		s.Handle("ning/v1/latency/b", marshal(t, r))
		if _, ok := store.Load(tt.node); ok != tt.want {
			t.Errorf("load of %s reported by site b stored: %v, want %v", tt.node, ok, tt.want)
		}
	}
	if got := testutil.ToFloat64(s.rejected.WithLabelValues(ReasonNodeSite)); got != 2 {
		t.Errorf("ning_reports_rejected_total{reason=%q} = %v, want 2", ReasonNodeSite, got)
	}
}
