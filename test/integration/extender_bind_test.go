package integration

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/bench"
	"github.com/ning-edge/ning/internal/extender"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/testcluster"
)

// TestExtenderBurst creates a 10-replica ReplicaSet, whose replicas the
// real ReplicaSet controller creates in one burst, for two stock
// kube-schedulers calling one `ning extender`: "bind" with bindVerb (as
// deploy/extender-config.yaml uncommented, or the chart's extender.bind: the
// extender binds each pod and counts it at once), "no-bind" without bindVerb (the default binder binds;
// the extender sees a replica only once its pod informer does). With bind the
// burst must land as the planner says, as the TrafficLatency plugin places it
// (TestScheduler's "workload spread by traffic"); without, it is logged:
// the figure of issue 20, item 6.
func TestExtenderBurst(t *testing.T) {
	cp := testcluster.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &env{cp: cp, c: cp.Client, store: staticStore(t, testRTT, testTraffic), ctx: ctx, site: map[string]string{}}
	e.createNodes(t)
	if err := testcluster.StartWorkloadControllers(ctx, e.c); err != nil {
		t.Fatal(err)
	}
	url := serveExtender(ctx, t, cancel, e)
	for _, name := range []string{"no-bind", "bind"} {
		cfg, err := extender.SchedulerConfig(extender.SchedulerConfigParams{
			Kubeconfig: cp.Kubeconfig, SchedulerName: name, URL: url,
			NodeCacheCapable: true, Bind: name == "bind",
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := bench.StartStockScheduler(ctx, t.TempDir(), cfg); err != nil {
			t.Fatal(err)
		}
	}

	const replicas = 10
	sites := []string{"a", "b", "c"}
	plan, err := placement.Plan(t.Context(), &placement.Problem{
		Sites: sites, Traffic: []float64{100, 10, 5},
		Capacity: []int{placement.Unlimited, placement.Unlimited, placement.Unlimited},
		RTT:      e.store.Matrix(sites), Replicas: replicas,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := plan.Map(sites)
	got := map[string]map[string]int{}
	// One after the other: both bursts through one extender at once would
	// each slow the other's binds.
	for _, name := range []string{"no-bind", "bind"} {
		ns := "burst-" + name
		if _, err := e.c.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		spec := podSpec()
		spec.SchedulerName = name
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
			Spec: appsv1.ReplicaSetSpec{
				Replicas: ptr.To(int32(replicas)),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: spec},
			},
		}
		if _, err := e.c.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		got[name] = e.sitesOf(t, ns, "app=web", replicas)
		t.Logf("%s: %d replicas in one burst, per site %v (plan %v)", name, replicas, got[name], want)
	}
	if diff := cmp.Diff(want, got["bind"]); diff != "" {
		t.Errorf("with bindVerb, replicas per site (-plan +scheduled):\n%s", diff)
	}
}
