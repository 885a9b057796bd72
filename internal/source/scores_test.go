package source

import (
	"errors"
	"fmt"
	"math"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/probe"
	"github.com/ning-edge/ning/internal/topology"
)

// TestScoresCPUFromProber: a real prober's /scores gives its node's CPU
// utilisation to the store, with no pressure, so a setup with only
// --scores-url has a CPU filter.
func TestScoresCPUFromProber(t *testing.T) {
	sc := probe.NewScores("a-1", 0.3)
	sc.Update(&ningv1.LatencyReport{SourceSite: "a", SourceNode: "a-1", Load: &ningv1.NodeLoad{CpuUtilisation: 0.9},
		Targets: []*ningv1.TargetResult{{Site: "b", Node: "b-1", Address: "10.0.1.1", Sent: 5, Received: 5, AvgMs: 40}}})
	srv := httptest.NewServer(sc)
	t.Cleanup(srv.Close)
	store, clk, m := newHTTPFixture(t)
	if err := NewScores(store, HTTPConfig{URL: srv.URL + "/scores"}, testSites, clk, m, discard()).Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	l, fresh := store.Load("a-1")
	if diff := cmp.Diff(topology.Load{CPU: 0.9, Updated: clk.Now()}, l); !fresh || diff != "" {
		t.Errorf("load of a-1 (fresh %v) (-want +got):\n%s", fresh, diff)
	}
	if _, fresh := store.Load("b-1"); fresh {
		t.Error("b-1 has a load: a target's entry carries none")
	}
	// NodeLoad's CPU filter (seed 004's 85 %) sees it.
	if ok, why := (placement.LoadPolicy{CPUFilter: 0.85, CPUPenaltyFrom: 0.7}).Filter(l); ok || why != "CPU utilisation 90% is at or above the 85% limit" {
		t.Errorf("filter: %v %q", ok, why)
	}
}

// TestScoresCPU covers what the prober's own entry may say about its CPU:
// a bad figure is refused and counted (bad_load) while the answer's RTTs are
// kept; a figure for no known node is counted unmapped; targets' figures are
// not read.
func TestScoresCPU(t *testing.T) {
	const target = `{"hostname":"b-1","ipv4":"10.0.1.1","cpuEwmaScore":0,"latencyEwmaScore":0.1}`
	type load struct {
		Node string
		CPU  float64
	}
	tests := []struct {
		name string
		body string
		// want is the load stored (nil: none for any node).
		want     *load
		refused  float64 // bad_load rejections
		unmapped float64
	}{
		{name: "the prober's own figure", body: `[{"hostname":"a-1","cpuEwmaScore":0.4,"latencyEwmaScore":0},` + target + `]`,
			want: &load{"a-1", 0.4}},
		{name: "an idle node", body: `[{"hostname":"a-1","cpuEwmaScore":0,"latencyEwmaScore":0},` + target + `]`,
			want: &load{"a-1", 0}},
		{name: "a fully busy node", body: `[{"hostname":"a-1","cpuEwmaScore":1,"latencyEwmaScore":0},` + target + `]`,
			want: &load{"a-1", 1}},
		{name: "the prober named by its address", body: `[{"hostname":"prober-x","ipv4":"10.0.0.2","cpuEwmaScore":0.3},` + target + `]`,
			want: &load{"a-2", 0.3}},
		{name: "a percentage, not a utilisation: refused, RTTs kept", body: `[{"hostname":"a-1","cpuEwmaScore":85},` + target + `]`,
			refused: 1},
		{name: "over 1: refused, RTTs kept", body: `[{"hostname":"a-1","cpuEwmaScore":1.5},` + target + `]`,
			refused: 1},
		{name: "negative: refused, RTTs kept", body: `[{"hostname":"a-1","cpuEwmaScore":-0.1},` + target + `]`,
			refused: 1},
		{name: "the prober names a site, not a node: unmapped", body: `[{"hostname":"a","cpuEwmaScore":0.4},` + target + `]`,
			unmapped: 1},
		{name: "a target's figure is not read", body: `[{"hostname":"a-1","cpuEwmaScore":0.2},{"hostname":"b-1","cpuEwmaScore":7,"latencyEwmaScore":0.1}]`,
			want: &load{"a-1", 0.2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, clk, m := newHTTPFixture(t)
			url := serve(t, func() (int, string) { return 200, tt.body })
			if err := NewScores(store, HTTPConfig{URL: url}, testSites, clk, m, discard()).Poll(t.Context()); err != nil {
				t.Fatalf("poll rejected: %v", err)
			}
			if ms, ok := store.RTT("a", "b"); !ok || ms != 40 {
				t.Errorf("a -> b: %v %v, want 40 ms: the RTTs must be kept", ms, ok)
			}
			var got *load
			for node := range testSites.NodeSite {
				if l, fresh := store.Load(node); fresh {
					if got != nil {
						t.Fatalf("loads for %s and %s", got.Node, node)
					}
					got = &load{node, l.CPU}
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("stored load (-want +got):\n%s", diff)
			}
			if v := testutil.ToFloat64(m.rejected.WithLabelValues(topology.ReasonBadLoad)); v != tt.refused {
				t.Errorf("rejected{bad_load} %v, want %v", v, tt.refused)
			}
			if v := testutil.ToFloat64(m.unmapped.WithLabelValues("scores")); v != tt.unmapped {
				t.Errorf("unmapped %v, want %v", v, tt.unmapped)
			}
			if v := testutil.ToFloat64(m.accepted.WithLabelValues("scores")); v != 1 {
				t.Errorf("accepted %v, want 1", v)
			}
		})
	}
}

// TestScoresLoadErrors: every figure that is not a utilisation gets a
// message naming the entry and the value (NaN cannot come through JSON, so
// it is checked here).
func TestScoresLoadErrors(t *testing.T) {
	for _, v := range []float64{math.NaN(), -0.1, 1.5, 85, math.Inf(1)} {
		_, _, err := ScoresLoad([]probe.Score{{Hostname: "a-1", CPUEwmaScore: v}}, testSites, time.Unix(0, 0))
		want := "entry 0 (a-1): cpuEwmaScore " + fmt.Sprint(v) + " is not a CPU utilisation in 0..1"
		var re *topology.RejectError
		ok := errors.As(err, &re)
		if !ok || re.Reason != topology.ReasonBadLoad || err.Error() != want {
			t.Errorf("cpuEwmaScore %v: err %v, want bad_load %q", v, err, want)
		}
	}
}

// TestScoresCPUDefersToMQTT: a node whose load also comes from the prober's
// MQTT reports (with its PSI) keeps that load; once those stop and it goes
// stale, /scores fills in, and its own later figures fold in as an EWMA.
func TestScoresCPUDefersToMQTT(t *testing.T) {
	store, clk, m := newHTTPFixture(t)
	cpu := 0.4
	url := serve(t, func() (int, string) {
		return 200, `[{"hostname":"a-1","cpuEwmaScore":` + fmt.Sprint(cpu) + `},{"hostname":"b-1","latencyEwmaScore":0.1}]`
	})
	s := NewScores(store, HTTPConfig{URL: url}, testSites, clk, m, discard())
	mqttLoad := topology.Load{CPU: 0.2, PSI: topology.PSI{Memory: topology.Pressure{Some: 30}}, Updated: clk.Now()}
	if err := store.ObserveLoad("a-1", mqttLoad); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		advance time.Duration
		cpu     float64
		want    float64 // a-1's CPU after the poll
		psi     bool    // a-1 still has the MQTT report's PSI
	}{
		{name: "an MQTT report is fresh: it wins", cpu: 0.4, want: 0.2, psi: true},
		{name: "still fresh a minute later", advance: time.Minute, cpu: 0.4, want: 0.2, psi: true},
		{name: "the MQTT report went stale: /scores fills in", advance: 2 * time.Minute, cpu: 0.4, want: 0.4},
		{name: "its next figure folds in (EWMA, alpha 0.3)", advance: 30 * time.Second, cpu: 0.6, want: 0.46},
	}
	for _, st := range steps {
		clk.Step(st.advance)
		cpu = st.cpu
		if err := s.Poll(t.Context()); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		l, fresh := store.Load("a-1")
		if !fresh || math.Abs(l.CPU-st.want) > 1e-9 || (l.PSI.Memory.Some == 30) != st.psi {
			t.Errorf("%s: load %+v (fresh %v), want CPU %v, MQTT PSI kept %v", st.name, l, fresh, st.want, st.psi)
		}
	}
}
