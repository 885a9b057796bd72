package rescheduler

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"

	"github.com/ning-edge/ning/internal/testcluster"
)

// TestEvictor runs the evictor against a real apiserver: dry-run touches
// nothing, limits hold before any request, a pod changed since the cache saw
// it is not evicted, and an eviction records its Event and metric.
func TestEvictor(t *testing.T) {
	ctx := context.Background()
	cp := testcluster.Start(t)
	if _, err := testcluster.CreateReadyNode(ctx, cp.Client, testcluster.Node{Name: "n1", Site: "a"}); err != nil {
		t.Fatal(err)
	}
	create := func(name string) *v1.Pod {
		p := makePod(name).on("n1").owner("ReplicaSet", "web").obj()
		p.UID = ""
		p.Spec.Containers = []v1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}
		got, err := cp.Client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	exists := func(p *v1.Pod) bool {
		live, err := cp.Client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		return err == nil && live.DeletionTimestamp == nil
	}
	req := func(p *v1.Pod) request {
		return request{pod: p, workload: "w", reason: ReasonReschedule, metric: "traffic", msg: "moving " + p.Name}
	}
	m := testMetrics(t)
	rec := record.NewFakeRecorder(10)
	ev := &evictor{client: cp.Client, m: m, log: discard(), recorder: rec, limits: Limits{Total: 1}}

	dry := *ev
	dry.dryRun = true
	a := create("a")
	if e, res := dry.evict(ctx, dry.budget(), req(a)); res != resultDryRun || !e.DryRun || !exists(a) {
		t.Fatalf("dry run: %v %+v, pod still there: %v", res, e, exists(a))
	}

	b := ev.budget()
	if _, res := ev.evict(ctx, b, req(a)); res != resultEvicted || exists(a) {
		t.Fatalf("evict: %v, pod still there: %v", res, exists(a))
	}
	c := create("c")
	if _, res := ev.evict(ctx, b, req(c)); res != resultLimited || !exists(c) {
		t.Fatalf("over the limit: %v, pod still there: %v", res, exists(c))
	}
	stale := c.DeepCopy()
	stale.UID = "not-the-live-uid"
	if _, res := ev.evict(ctx, ev.budget(), req(stale)); res != resultGone || !exists(c) {
		t.Fatalf("stale cache: %v, pod still there: %v", res, exists(c))
	}
	if diff := cmp.Diff("Normal NingReschedule moving a", <-rec.Events); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	for result, want := range map[result]float64{resultDryRun: 1, resultEvicted: 1, resultGone: 1} {
		if got := testutil.ToFloat64(m.Evictions.WithLabelValues("traffic", string(result))); got != want {
			t.Errorf("evictions{result=%s} = %v, want %v", result, got, want)
		}
	}
	if got := testutil.ToFloat64(m.Decisions.WithLabelValues("limited")); got != 1 {
		t.Errorf("decisions{limited} = %v, want 1", got)
	}

	// Deleting a down node's pod: forced, outside the limits.
	if _, res := ev.delete(ctx, request{pod: c, reason: ReasonNodeDown, metric: "node_down", msg: "node n1 is down"}, true); res != resultDeleted {
		t.Fatalf("delete: %v", res)
	}
	if _, err := cp.Client.CoreV1().Pods("default").Get(ctx, "c", metav1.GetOptions{}); err == nil {
		t.Error("a forced deletion left the pod")
	}
}
