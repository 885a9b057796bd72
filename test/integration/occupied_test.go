package integration

import (
	"testing"
	"time"

	"github.com/ning-edge/ning/internal/rescheduler"
	"github.com/ning-edge/ning/internal/testcluster"
)

// TestMinPerOccupiedSite checks seed 000's "shutting down idle pods, but
// keeping at least 1" end to end: the traffic of sites b and c moves to a,
// and the rescheduler follows it. With --min-per-occupied-site 1 it moves
// pods to a but leaves b and c one pod each, at no moment fewer; without it
// (ning's default) b and c are emptied, because they have no traffic left.
func TestMinPerOccupiedSite(t *testing.T) {
	before := map[string]float64{"a": 10, "b": 100, "c": 100}
	after := map[string]float64{"a": 200}
	for _, tc := range []struct {
		name     string
		occupied int
	}{{"keeping at least 1", 1}, {"off", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			e := startReschedEnvOn(t, testcluster.Start(t), reschedOptions{replicas: 1, edit: func(c *rescheduler.Config) {
				c.MinPerOccupiedSite = tc.occupied
			}})
			lead, _ := e.leader(t)
			ns := e.namespace(t)
			setTraffic(t, e.store, before)
			start := planFor(t, before, 5)
			if start["b"] == 0 || start["c"] == 0 {
				t.Fatalf("the plan before the shift is %v: the test needs pods at b and c", start)
			}
			e.createDeployment(t, ns, "web", 5, nil, 4)
			e.waitPlacement(t, ns, "web", start, 60*time.Second)

			want := planFor(t, after, 5)
			if tc.occupied > 0 {
				// The plan with b and c kept at one pod each: the rest at a.
				want = map[string]int{"a": 5 - 2, "b": 1, "c": 1}
			}
			if want["a"] <= start["a"] {
				t.Fatalf("from %v to %v moves nothing to a: the test does not exercise the rescheduler", start, want)
			}
			stop := make(chan struct{})
			safety := e.watchSafety(ns, "web", []string{"b", "c"}, stop)
			t0 := time.Now()
			setTraffic(t, e.store, after)
			e.waitPlacement(t, ns, "web", want, 90*time.Second)
			moves := lead.evictions(t, "traffic")
			t.Logf("--min-per-occupied-site %d: %v to %v in %.1f s, %.0f evictions", tc.occupied, start, want, time.Since(t0).Seconds(), moves)
			// Stay put: the kept pods are not evicted later either.
			time.Sleep(10 * reschedInterval)
			close(stop)
			if again := lead.evictions(t, "traffic"); again != moves {
				t.Errorf("%.0f more evictions after the workload settled at %v", again-moves, want)
			}
			_, emptied := safety()
			if tc.occupied > 0 && len(emptied) > 0 {
				t.Errorf("sites left without a pod although each ran one: %v", emptied)
			}
			if tc.occupied == 0 && len(emptied) != 2 {
				t.Errorf("emptied %v, want b and c: without the option, sites with no traffic keep nothing", emptied)
			}
		})
	}
}
