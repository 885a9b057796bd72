// Package integration runs ning's components against a real kube-apiserver
// (embedded etcd, in process), the real kube-scheduler and the real workload
// controllers.
package integration

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-base/metrics/testutil"

	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/schedmetrics"
)

// Sites a, b, c: most traffic enters at a; c is far from a.
var (
	testRTT     = map[[2]string]float64{{"a", "b"}: 10, {"a", "c"}: 40, {"b", "c"}: 30}
	testTraffic = map[string]float64{"a": 100, "b": 10, "c": 5}
)

// runPlacementCases checks the single-pod cases that every way of running
// ning (its own scheduler, the stock scheduler with the extender) must place
// alike; edit sets the scheduler name and anything else the caller needs.
func runPlacementCases(t *testing.T, e *env, edit func(*v1.Pod)) {
	t.Helper()
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   string
		why    string
	}{
		{"no constraint goes where the traffic is", nil, "a", "most traffic enters at a"},
		{"delay from a site", map[string]string{"delay_c": "15"}, "c", "the only site within 15 ms of c"},
		{"delay from a node", map[string]string{"delay_c-0": "35"}, "b", "within 35 ms of c, nearest the traffic at a"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ns := e.namespace(t)
			e.createPod(t, ns, "p", c.labels, edit)
			if got := e.waitSite(t, ns, "p"); got != c.want {
				t.Fatalf("site = %s, want %s (%s)", got, c.want, c.why)
			}
		})
	}
}

func TestScheduler(t *testing.T) {
	e := startEnv(t, staticStore(t, testRTT, testTraffic), true)

	runPlacementCases(t, e, nil)

	t.Run("the placement note names the runner-up", func(t *testing.T) {
		ns := e.namespace(t)
		e.createPod(t, ns, "p", nil, nil)
		e.waitSite(t, ns, "p")
		note := e.waitNote(t, ns, "p")
		// A bare pod is a workload's first replica: the note says what it
		// serves, never the unknown-RTT penalty the cost charges "no replica".
		for _, want := range []string{"Placed in site a", "first replica: serves all", "runner-up site"} {
			if !strings.Contains(note, want) {
				t.Errorf("note %q lacks %q", note, want)
			}
		}
		if strings.Contains(note, "9999") || strings.Contains(note, "lowers") {
			t.Errorf("note %q shows a gain over the unknown-RTT penalty", note)
		}
		// The runner-up is a candidate site: with only b's and c's nodes
		// allowed, never a (which ranks first when allowed).
		e.createPod(t, ns, "bc", nil, func(p *v1.Pod) { p.Spec.Affinity = zoneAffinity([]string{"b", "c"}) })
		e.waitSite(t, ns, "bc")
		if note := e.waitNote(t, ns, "bc"); strings.Contains(note, "site a") || !strings.Contains(note, "runner-up site") {
			t.Errorf("note %q: want a runner-up among b and c", note)
		}
		// The note replaces the Event ning's scheduler recorded per pod.
		list, err := e.c.EventsV1().Events(ns).List(e.ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range list.Items {
			if ev.Reason == policy.ReasonPlacement {
				t.Errorf("a %s Event on %s: %s", ev.Reason, ev.Regarding.Name, ev.Note)
			}
		}
	})

	t.Run("delay from a pod", func(t *testing.T) {
		ns := e.namespace(t)
		e.createPod(t, ns, "anchor", map[string]string{"delay_c": "1"}, nil)
		if got := e.waitSite(t, ns, "anchor"); got != "c" {
			t.Fatalf("anchor site = %s", got)
		}
		e.createPod(t, ns, "p", map[string]string{"delay_anchor": "5"}, nil)
		if got := e.waitSite(t, ns, "p"); got != "c" {
			t.Fatalf("site = %s, want c (the anchor pod's site)", got)
		}
	})

	t.Run("unsatisfiable stays pending with the reason", func(t *testing.T) {
		ns := e.namespace(t)
		e.createPod(t, ns, "p", map[string]string{"delay_a": "12", "delay_c": "12"}, nil)
		msg := e.waitUnschedulable(t, ns, "p")
		for _, want := range []string{"delay_a 12ms: c is 40.0ms from a", "delay_c 12ms:"} {
			if !strings.Contains(msg, want) {
				t.Errorf("condition message %q lacks %q", msg, want)
			}
		}
		e.waitEvent(t, ns, "p", "FailedScheduling")
	})

	t.Run("malformed label is visible and blocks nothing else", func(t *testing.T) {
		ns := e.namespace(t)
		before, _ := testutil.GetCounterMetricValue(schedmetrics.Register().RejectedLabels)
		e.createPod(t, ns, "bad", map[string]string{"delay_a": "soon"}, nil)
		msg := e.waitUnschedulable(t, ns, "bad")
		if want := `label delay_a="soon" is not a delay in milliseconds (want e.g. "25" or "25ms")`; !strings.Contains(msg, want) {
			t.Fatalf("condition message %q lacks %q", msg, want)
		}
		e.createPod(t, ns, "good", nil, nil)
		if got := e.waitSite(t, ns, "good"); got != "a" {
			t.Fatalf("a well-formed pod after the bad one: site %s, want a", got)
		}
		if after, _ := testutil.GetCounterMetricValue(schedmetrics.Register().RejectedLabels); after <= before {
			t.Errorf("ning_scheduler_malformed_delay_labels_total did not rise (%v -> %v)", before, after)
		}
	})

	t.Run("cloud only as fallback", func(t *testing.T) {
		ns := e.namespace(t)
		// Only the cloud node and site a's nodes are allowed; a wins.
		e.createPod(t, ns, "edge", nil, func(p *v1.Pod) { p.Spec.NodeSelector = nil })
		if got := e.waitSite(t, ns, "edge"); got == "cloud" {
			t.Fatal("a pod went to the cloud while edge nodes fit")
		}
		// No edge node fits a 7.5-CPU pod after the others; the cloud node does.
		e.createPod(t, ns, "big", nil, func(p *v1.Pod) {
			p.Spec.Tolerations = nil
			p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{
					Key: v1.LabelTopologyZone, Operator: v1.NodeSelectorOpIn, Values: []string{"c", "cloud"},
				}}}},
			}}}
			p.Labels = map[string]string{"delay_a": "1000"}
		})
		if got := e.waitSite(t, ns, "big"); got != "c" {
			t.Fatalf("site = %s, want the edge site c over the cloud", got)
		}
	})

	t.Run("workload spread by traffic as the planner says", func(t *testing.T) {
		ns := e.namespace(t)
		e.createReplicaSet(t, ns, "web", 6, nil)
		got := e.sitesOf(t, ns, "app=web", 6)
		sites := []string{"a", "b", "c"}
		p := &placement.Problem{
			Sites: sites, Traffic: []float64{100, 10, 5},
			Capacity: []int{placement.Unlimited, placement.Unlimited, placement.Unlimited},
			RTT:      e.store.Matrix(sites), Replicas: 6,
		}
		plan, err := placement.Plan(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(plan.Map(sites), got); diff != "" {
			t.Fatalf("replicas per site (-plan +scheduled):\n%s", diff)
		}
	})
}
