package integration

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/topology"
)

// TestSiteLimits: seed 000's "schedule more application pods until limit,
// then on the sites sorted earlier". ning's scheduler fills a site until
// the workload's limit there (its pods' ning.io/max-per-site, the site's
// capacity from the topology file or a node's ning.io/site-capacity) and
// puts the rest where the planner, given the same limits, puts them.
func TestSiteLimits(t *testing.T) {
	e := startEnv(t, staticStore(t, testRTT, testTraffic), true)
	sites := []string{"a", "b", "c"}
	// planned is the planner's placement of replicas under the capacities.
	planned := func(t *testing.T, replicas int, capacity []int) map[string]int {
		t.Helper()
		p := &placement.Problem{Sites: sites, Traffic: []float64{100, 10, 5}, Capacity: capacity,
			RTT: e.store.Matrix(sites), Replicas: replicas}
		plan, err := placement.Plan(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		return plan.Map(sites)
	}
	u := placement.Unlimited

	t.Run("max-per-site: the busiest site until its limit, the rest as the planner says", func(t *testing.T) {
		ns := e.namespace(t)
		e.createReplicaSet(t, ns, "web", 5, map[string]string{policy.LabelMaxPerSite: "2"})
		got := e.sitesOf(t, ns, "app=web", 5)
		want := planned(t, 5, []int{2, 2, 2})
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("replicas per site (-plan +scheduled):\n%s", diff)
		}
		// Without the limit the planner puts more than 2 on a (and more
		// than 1 of 4): the limits are what spread them.
		for replicas, limit := range map[int]int{5: 2, 4: 1} {
			if free := planned(t, replicas, []int{u, u, u}); free["a"] <= limit {
				t.Fatalf("the unlimited plan of %d, %v, does not fill a past %d: the cases show nothing", replicas, free, limit)
			}
		}
	})

	t.Run("more replicas than the limits hold: the rest stay pending with the reason", func(t *testing.T) {
		ns := e.namespace(t)
		e.createPod(t, ns, "p0", map[string]string{policy.LabelMaxPerSite: "0"}, nil)
		msg := e.waitUnschedulable(t, ns, "p0")
		if want := "holds 0 replicas of the workload, the most its ning.io/max-per-site label allows (0)"; !strings.Contains(msg, want) {
			t.Fatalf("condition message %q lacks %q", msg, want)
		}
	})

	t.Run("a malformed limit is rejected with the reason", func(t *testing.T) {
		ns := e.namespace(t)
		e.createPod(t, ns, "bad", map[string]string{policy.LabelMaxPerSite: "two"}, nil)
		msg := e.waitUnschedulable(t, ns, "bad")
		if want := `label ning.io/max-per-site="two" is not a whole number of replicas`; !strings.Contains(msg, want) {
			t.Fatalf("condition message %q lacks %q", msg, want)
		}
	})

	t.Run("site capacity from the topology file", func(t *testing.T) {
		spec := &topology.Spec{Sites: []topology.SiteSpec{{Name: "a", Traffic: 100, Capacity: ptr.To(1)}, {Name: "b", Traffic: 10}, {Name: "c", Traffic: 5}}}
		if err := e.store.LoadSpec(spec); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := e.store.LoadSpec(&topology.Spec{Sites: spec.Sites[1:]}); err != nil {
				t.Error(err)
			}
		})
		ns := e.namespace(t)
		e.createReplicaSet(t, ns, "web", 4, nil)
		got := e.sitesOf(t, ns, "app=web", 4)
		if diff := cmp.Diff(planned(t, 4, []int{1, u, u}), got); diff != "" {
			t.Fatalf("replicas per site (-plan +scheduled):\n%s", diff)
		}
	})

	t.Run("site capacity from a node label", func(t *testing.T) {
		n, err := e.c.CoreV1().Nodes().Get(e.ctx, "a-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Labels[policy.LabelSiteCapacity] = "1"
		if _, err := e.c.CoreV1().Nodes().Update(e.ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.unlabel(t, "a-1", policy.LabelSiteCapacity) })
		ns := e.namespace(t)
		e.createReplicaSet(t, ns, "web", 4, nil)
		got := e.sitesOf(t, ns, "app=web", 4)
		if diff := cmp.Diff(planned(t, 4, []int{1, u, u}), got); diff != "" {
			t.Fatalf("replicas per site (-plan +scheduled):\n%s", diff)
		}
	})
}

// unlabel removes a label from a node.
func (e *env) unlabel(t *testing.T, node, key string) {
	t.Helper()
	n, err := e.c.CoreV1().Nodes().Get(context.WithoutCancel(e.ctx), node, metav1.GetOptions{})
	if err != nil {
		t.Error(err)
		return
	}
	delete(n.Labels, key)
	if _, err := e.c.CoreV1().Nodes().Update(context.WithoutCancel(e.ctx), n, metav1.UpdateOptions{}); err != nil {
		t.Error(err)
	}
}
