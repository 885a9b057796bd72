package integration

import (
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/component-base/metrics/testutil"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/ning-edge/ning/internal/plugins/trafficlatency"
	"github.com/ning-edge/ning/internal/schedmetrics"
	"github.com/ning-edge/ning/internal/topology"
)

// TestSchedulerStaleData: every measurement has gone stale. Pods without
// constraints still schedule (TrafficLatency scores neutrally and counts it);
// a constraint passes where the RTT is known (a site to itself) and fails
// closed where it is not; and a pod that only an unmeasured site could take
// fails open rather than wait, with an Event saying so.
func TestSchedulerStaleData(t *testing.T) {
	t0 := time.Now()
	clk := clocktesting.NewFakePassiveClock(t0)
	store := topology.NewStore(topology.Config{TTL: time.Minute}, clk)
	for _, m := range []topology.RTTSample{
		{From: "a", To: "b", MeanMs: 10, Sent: 5, Received: 5, At: t0},
		{From: "a", To: "c", MeanMs: 40, Sent: 5, Received: 5, At: t0},
	} {
		if err := store.ObserveRTT(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.SetTraffic("a", 100, t0, false); err != nil {
		t.Fatal(err)
	}
	clk.SetTime(t0.Add(time.Hour))
	if _, ok := store.RTT("a", "b"); ok {
		t.Fatal("RTT still fresh after the TTL")
	}
	e := startEnv(t, store, false)
	missing := func() float64 {
		v, _ := testutil.GetCounterMetricValue(schedmetrics.Register().MissingData.WithLabelValues(trafficlatency.Name, "traffic"))
		return v
	}

	t.Run("no traffic data: neutral, counted", func(t *testing.T) {
		ns := e.namespace(t)
		before := missing()
		e.createPod(t, ns, "p", nil, nil)
		if got := e.waitSite(t, ns, "p"); got == "" || got == "cloud" {
			t.Fatalf("site = %q, want an edge site", got)
		}
		if after := missing(); after <= before {
			t.Fatalf("ning_scheduler_missing_data_total{TrafficLatency,traffic} did not rise (%v -> %v)", before, after)
		}
	})

	t.Run("unknown RTT fails closed where another site passes", func(t *testing.T) {
		ns := e.namespace(t)
		for _, name := range []string{"p0", "p1", "p2", "p3"} {
			e.createPod(t, ns, name, map[string]string{"delay_a": "20"}, nil)
			if got := e.waitSite(t, ns, name); got != "a" {
				t.Fatalf("%s: site = %s, want a (b and c are unmeasured now)", name, got)
			}
		}
	})

	t.Run("only unmeasured sites fit: fail open", func(t *testing.T) {
		ns := e.namespace(t)
		e.createPod(t, ns, "p", map[string]string{"delay_a": "20"}, func(p *v1.Pod) {
			p.Spec.NodeSelector = map[string]string{v1.LabelTopologyZone: "c"}
		})
		if got := e.waitSite(t, ns, "p"); got != "c" {
			t.Fatalf("site = %s, want c", got)
		}
		note := e.waitEvent(t, ns, "p", "NingDelayFailOpen")
		if !strings.Contains(note, "fail open") {
			t.Fatalf("event note %q", note)
		}
	})
}
