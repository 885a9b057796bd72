package placement

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ning-edge/ning/internal/topology"
)

type staticRTT map[[2]string]float64

func (s staticRTT) RTT(from, to string) (float64, bool) {
	if from == to {
		return 0, true
	}
	if v, ok := s[[2]string{from, to}]; ok {
		return v, true
	}
	v, ok := s[[2]string{to, from}]
	return v, ok
}

func TestParseConstraints(t *testing.T) {
	got, err := ParseConstraints(map[string]string{"app": "x", "delay_edge-1": "25", "delay_site-b": "12.5ms"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Constraint{{Label: "delay_edge-1", From: "edge-1", MaxMs: 25}, {Label: "delay_site-b", From: "site-b", MaxMs: 12.5}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("constraints (-want +got):\n%s", diff)
	}
}

func TestParseConstraintsErrors(t *testing.T) {
	tests := []struct{ key, value, want string }{
		{"delay_", "25", `label delay_ names no node, site or pod after "delay_" (want e.g. delay_edge-1: "25")`},
		{"delay_a", "", `label delay_a is empty (want a delay in milliseconds, e.g. "25")`},
		{"delay_a", "fast", `label delay_a="fast" is not a delay in milliseconds (want e.g. "25" or "25ms")`},
		{"delay_a", "NaN", `label delay_a="NaN" is not a delay in milliseconds (want e.g. "25" or "25ms")`},
		{"delay_a", "Inf", `label delay_a="Inf" is not a delay in milliseconds (want e.g. "25" or "25ms")`},
		{"delay_a", "25s", `label delay_a="25s" is not a delay in milliseconds (want e.g. "25" or "25ms")`},
		{"delay_a", "-3", `label delay_a="-3" is negative (want a delay of at least 0 ms)`},
		{"delay_a", "90000", `label delay_a="90000" is above the 60000 ms limit`},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			good, err := ParseConstraints(map[string]string{tt.key: tt.value, "delay_ok": "5"})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v; want %q", err, tt.want)
			}
			if len(good) != 1 || good[0].From != "ok" {
				t.Fatalf("the valid label was lost: %v", good)
			}
		})
	}
}

func TestCheckSite(t *testing.T) {
	rtt := staticRTT{{"edge", "site-c"}: 41.2, {"edge", "site-b"}: 10}
	cs := []Resolved{{Constraint: Constraint{Label: "delay_edge-1", From: "edge-1", MaxMs: 25}, FromSite: "edge"}}
	if v := CheckSite(cs, "site-b", rtt, FailClosed); !v.OK {
		t.Fatalf("site-b at 10ms must pass: %+v", v)
	}
	if v := CheckSite(cs, "edge", rtt, FailClosed); !v.OK {
		t.Fatalf("the from site itself must pass: %+v", v)
	}
	v := CheckSite(cs, "site-c", rtt, FailClosed)
	if want := "delay_edge-1 25ms: site-c is 41.2ms from edge-1 (site edge)"; v.OK || v.Reason != want {
		t.Fatalf("verdict = %+v; want reason %q", v, want)
	}
	v = CheckSite(cs, "site-x", rtt, FailClosed)
	if want := "delay_edge-1 25ms: no RTT measurement between edge and site-x"; v.OK || !v.Unknown || v.Reason != want {
		t.Fatalf("unknown RTT, fail closed: %+v; want reason %q", v, want)
	}
	if v := CheckSite(cs, "site-x", rtt, FailOpen); !v.OK || !v.Unknown {
		t.Fatalf("unknown RTT, fail open: %+v", v)
	}
}

func TestLoadPolicy(t *testing.T) {
	lp := LoadPolicy{CPUFilter: 0.85, CPUPenaltyFrom: 0.70, Penalty: 0.15}
	idle, busy := loadOf(0.1), loadOf(0.8)
	if lp.Score(idle) <= lp.Score(busy) {
		t.Fatalf("an idle node (%v) must score above a busy one (%v)", lp.Score(idle), lp.Score(busy))
	}
	if got := lp.Score(loadOf(0.72)); got > 1-0.72-0.15+1e-9 {
		t.Fatalf("penalty zone not applied: %v", got)
	}
	ok, reason := lp.Filter(loadOf(0.9))
	if want := "CPU utilisation 90% is at or above the 85% limit"; ok || reason != want {
		t.Fatalf("filter = %v %q; want %q", ok, reason, want)
	}
	lp.PSI.Memory.Full = 20
	l := loadOf(0.1)
	l.PSI.Memory.Full = 25
	if ok, reason := lp.Filter(l); ok || !strings.Contains(reason, "memory pressure (full, avg10) 25.0% is at or above the 20.0% limit") {
		t.Fatalf("PSI filter = %v %q", ok, reason)
	}
}

// FuzzParseConstraints checks that no label crashes the parser and that every
// accepted constraint is within limits.
func FuzzParseConstraints(f *testing.F) {
	f.Add("delay_edge-1", "25")
	f.Add("delay_a", "12.5ms")
	f.Add("delay_", "-1")
	f.Fuzz(func(t *testing.T, key, value string) {
		cs, _ := ParseConstraints(map[string]string{key: value})
		for _, c := range cs {
			if c.From == "" || c.MaxMs < 0 || c.MaxMs > MaxDelayMs || c.MaxMs != c.MaxMs {
				t.Fatalf("accepted %+v", c)
			}
		}
	})
}

func loadOf(cpu float64) topology.Load { return topology.Load{CPU: cpu} }
