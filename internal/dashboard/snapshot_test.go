package dashboard

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"
)

func TestBuildSites(t *testing.T) {
	s := fixture(t)
	want := []Site{
		{Name: "austin", Nodes: 1, Ready: 1, TrafficRPS: ptr.To(5.0)},
		{Name: "dallas", Nodes: 2, Ready: 1, TrafficRPS: ptr.To(100.0), Replicas: 3},
		{Name: "edge-x", Nodes: 1, Ready: 1, Replicas: 1},
		{Name: "paris"},
		{Name: "toronto", Nodes: 2, Ready: 2, TrafficRPS: ptr.To(20.0), Replicas: 1},
	}
	if d := cmp.Diff(want, s.Sites); d != "" {
		t.Errorf("sites (-want +got):\n%s", d)
	}
	if s.Busiest != "dallas" {
		t.Errorf("busiest = %q, want dallas", s.Busiest)
	}
}

func TestBuildMatrixUnknownIsNil(t *testing.T) {
	s := fixture(t)
	idx := map[string]int{}
	for i, st := range s.Sites {
		idx[st.Name] = i
	}
	rtt := func(a, b string) *float64 { return s.RTTMs[idx[a]][idx[b]] }
	for _, c := range []struct {
		a, b string
		want *float64
	}{
		{"dallas", "toronto", ptr.To(34.0)},
		{"toronto", "dallas", ptr.To(34.0)}, // the reverse direction
		{"austin", "toronto", ptr.To(40.0)},
		{"dallas", "paris", ptr.To(95.0)},
		{"paris", "toronto", nil},
		{"edge-x", "dallas", nil},
		{"edge-x", "edge-x", ptr.To(0.0)},
	} {
		if d := cmp.Diff(c.want, rtt(c.a, c.b)); d != "" {
			t.Errorf("RTT %s -> %s (-want +got):\n%s", c.a, c.b, d)
		}
	}
}

func TestBuildWorkloads(t *testing.T) {
	s := fixture(t)
	if len(s.Workloads) != 2 {
		t.Fatalf("want 2 workloads (lab/solo, shop/web), got %+v", s.Workloads)
	}
	solo, web := s.Workloads[0], s.Workloads[1]
	if solo.Key() != "lab/solo" || solo.Kind != "Pod" || solo.Total() != 1 || solo.Replicas["edge-x"] != 1 {
		t.Errorf("solo: %+v", solo)
	}
	if solo.WeightedRTTMs != nil {
		t.Errorf("solo's traffic reaches no replica at a known RTT: want an unknown weighted RTT, got %v", *solo.WeightedRTTMs)
	}
	if web.Key() != "shop/web" || web.Name != "web-6d4f8" || web.Kind != "ReplicaSet" || web.Deployment != "web" {
		t.Errorf("web: %+v", web)
	}
	if d := cmp.Diff(map[string]int{"dallas": 3, "toronto": 1}, web.Replicas); d != "" {
		t.Errorf("web replicas (-want +got):\n%s", d)
	}
	if web.Pending != 1 {
		t.Errorf("web pending = %d, want 1", web.Pending)
	}
	// dallas's and toronto's traffic is served in place; austin's 5 req/s
	// goes 8 ms to dallas: 5*8/125.
	if web.WeightedRTTMs == nil || math.Abs(*web.WeightedRTTMs-0.32) > 1e-9 {
		t.Errorf("web weighted RTT = %v, want 0.32", web.WeightedRTTMs)
	}
	if d := web.LastDecision; d == nil || d.Reason != "NingReschedule" || d.Name != "web-6d4f8-old" {
		t.Errorf("web's last decision: want the reschedule of a pod that is gone, got %+v", d)
	}
	if d := solo.LastDecision; d == nil || d.Reason != "NingPlacement" || d.Name != "solo" {
		t.Errorf("solo's last decision: %+v", d)
	}
}

// TestBuildWeightedRTTPerReplicaLimit: with 30 req/s per replica, web's
// replicas serve 90 req/s in dallas and 30 in toronto, 120 of the 125 req/s
// entering, so each is overloaded by 125/120: dallas serves 93.75, toronto
// 31.25. The cheapest routing keeps dallas's 93.75 at home, sends its other
// 6.25 req/s 34 ms to toronto and austin's 5 req/s 40 ms to toronto (412.5)
// rather than austin's to dallas at 8 ms and 11.25 of dallas's to toronto
// (422.5): 412.5 / 125 = 3.3 ms.
func TestBuildWeightedRTTPerReplicaLimit(t *testing.T) {
	in := fixtureInputs()
	in.perReplica = 30
	web := build(in, fixtureStore(t)).Workloads[1]
	if web.WeightedRTTMs == nil || math.Abs(*web.WeightedRTTMs-3.3) > 1e-6 {
		t.Errorf("web's weighted RTT with 30 req/s per replica = %v, want 3.3", web.WeightedRTTMs)
	}
}

func TestBuildDecisions(t *testing.T) {
	s := fixture(t)
	var got []string
	for _, d := range s.Decisions {
		got = append(got, d.Reason+" "+d.Namespace+"/"+d.Name)
	}
	want := []string{"NingReschedule shop/web-6d4f8-old", "NingPlacement shop/web-6d4f8-a", "NingPlacement lab/solo"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("decisions, newest first, only Ning reasons (-want +got):\n%s", d)
	}
	in := fixtureInputs()
	in.decisions = 1
	if s := build(in, fixtureStore(t)); len(s.Decisions) != 1 || s.Decisions[0].Reason != "NingReschedule" {
		t.Errorf("with a limit of 1: %+v", s.Decisions)
	}
}

func TestEventTimeFromEitherAPI(t *testing.T) {
	e := event("ns", "p", "NingReschedule", "m", time.Time{})
	e.EventTime.Time = t0 // events.k8s.io sets eventTime, not lastTimestamp
	if got := eventTime(e); !got.Equal(t0) {
		t.Errorf("eventTime = %v, want %v", got, t0)
	}
}

func TestSelect(t *testing.T) {
	s := fixture(t)
	for _, name := range []string{"shop/web", "shop/web-6d4f8"} {
		got, err := s.Select(name)
		if err != nil || len(got.Workloads) != 1 || got.Workloads[0].Name != "web-6d4f8" {
			t.Errorf("Select(%q) = %+v, %v", name, got.Workloads, err)
		}
	}
	for name, want := range map[string]string{
		"web":         "want namespace/name",
		"shop/":       "want namespace/name",
		"shop/nope":   "workload shop/nope not found; known: lab/solo, shop/web",
		"other/web-x": "not found",
	} {
		if _, err := s.Select(name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Select(%q): want an error containing %q, got %v", name, want, err)
		}
	}
	if _, err := (Snapshot{}).Select("a/b"); err == nil || !strings.Contains(err.Error(), "no ning-scheduled workload") {
		t.Errorf("Select on an empty snapshot: %v", err)
	}
}

// TestBuildDelayZones: the configured delays and each delay_<from> value on
// the pods shown become delay zones over the fixture's sites (dallas-austin
// 8 ms, dallas-toronto 34, austin-toronto 40, dallas-paris 95, the rest
// unknown), and the status table prints them, smallest delay first.
func TestBuildDelayZones(t *testing.T) {
	in := fixtureInputs()
	in.delayLayers = []float64{40, 10}
	in.pods[0].Labels["delay_dallas"] = "35"
	in.pods[0].Labels["delay_bad"] = "soon"
	s := build(in, fixtureStore(t))
	want := map[string][][]string{
		"10ms": {{"austin", "dallas"}, {"edge-x"}, {"paris"}, {"toronto"}},
		"35ms": {{"austin", "dallas"}, {"edge-x"}, {"paris"}, {"toronto"}},
		"40ms": {{"austin", "dallas", "toronto"}, {"edge-x"}, {"paris"}},
	}
	if d := cmp.Diff(want, s.DelayZones); d != "" {
		t.Fatalf("delay zones (-want +got):\n%s", d)
	}
	var b strings.Builder
	if err := WriteTable(&b, s, ""); err != nil {
		t.Fatal(err)
	}
	wantLines := "delay zones within 10ms: [austin dallas] [edge-x] [paris] [toronto]\n" +
		"delay zones within 35ms: [austin dallas] [edge-x] [paris] [toronto]\n" +
		"delay zones within 40ms: [austin dallas toronto] [edge-x] [paris]\n"
	if !strings.Contains(b.String(), wantLines) {
		t.Fatalf("status table lacks the delay zones %q:\n%s", wantLines, b.String())
	}
	if s := build(fixtureInputs(), fixtureStore(t)); s.DelayZones != nil {
		t.Fatalf("no delays: zones %v", s.DelayZones)
	}
}
