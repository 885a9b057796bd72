package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ning-edge/ning/internal/rescheduler"
	"github.com/ning-edge/ning/internal/testcluster"
)

// disagreeingScheduler is ning's profile with NodeAffinity's score weighted
// far above TrafficLatency's: a pod that prefers a site goes there whatever
// the traffic, which the rescheduler's prediction (TrafficLatency's choice)
// does not know.
func disagreeingScheduler(kubeconfig string) string {
	return fmt.Sprintf(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: false
clientConnection:
  kubeconfig: %q
profiles:
  - schedulerName: ning-scheduler
    plugins:
      multiPoint:
        enabled:
          - name: NetworkLatency
          - name: TrafficLatency
            weight: 1
          - name: NodeAffinity
            weight: 100
      preScore:
        disabled:
          - name: PodTopologySpread
      score:
        disabled:
          - name: PodTopologySpread
    pluginConfig:
      - name: NetworkLatency
        args:
          siteLabel: topology.kubernetes.io/zone
          unknownRTT: FailClosed
      - name: TrafficLatency
        args:
          siteLabel: topology.kubernetes.io/zone
          perReplicaRPS: %d
`, kubeconfig, perReplicaRPS)
}

// TestReschedulerBounces runs the rescheduler against a real apiserver and
// a scheduler whose choice disagrees with the rescheduler's prediction: the
// workload prefers site a (NodeAffinity, weighted 100) while its traffic is
// at c (TrafficLatency, weighted 1). Every move the rescheduler makes toward
// c is put back on a. It must count each bounce, back off exponentially,
// and stop evicting, not evict every few cycles forever; and the standby
// that takes over carries the backoff on (from the Events' annotations).
func TestReschedulerBounces(t *testing.T) {
	const cooldown = 5 * time.Second
	store := staticStore(t, map[[2]string]float64{{"a", "b"}: 10, {"b", "c"}: 10, {"a", "c"}: 20}, map[string]float64{"c": 100})
	e := startReschedEnvOn(t, testcluster.Start(t), reschedOptions{replicas: 2, store: store, schedulerConfig: disagreeingScheduler,
		edit: func(c *rescheduler.Config) { c.MoveCooldown = cooldown }})
	lead, standby := e.leader(t)
	ns := e.namespace(t)
	e.createDeploymentEdit(t, ns, "sticky", 2, nil, func(s *v1.PodSpec) {
		s.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []v1.PreferredSchedulingTerm{{
			Weight: 100,
			Preference: v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{{
				Key: v1.LabelTopologyZone, Operator: v1.NodeSelectorOpIn, Values: []string{"a"}}}},
		}}}}
	})
	e.waitPlacement(t, ns, "sticky", map[string]int{"a": 2}, 60*time.Second)

	// Waits after each bounce: twice the cooldown, doubled per bounce.
	const bounces = 3
	bounced := func() float64 { return testutil.ToFloat64(lead.m.MoveBounces.WithLabelValues("traffic")) }
	start := time.Now()
	err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 90*time.Second, true, func(context.Context) (bool, error) {
		return bounced() >= bounces, nil
	})
	if err != nil {
		t.Fatalf("%.0f bounces, want %d: %v", bounced(), bounces, err)
	}
	evicted := lead.evictions(t, "traffic")
	t.Logf("%d bounces in %.1f s after %.0f evictions", bounces, time.Since(start).Seconds(), evicted)
	if evicted != bounces {
		t.Errorf("%.0f evictions for %d bounces: every move toward c must have landed back on a and been counted", evicted, bounces)
	}
	// The next try comes 2^bounces cooldowns (40 s) after the last
	// eviction: 20 cycles (10 s) must pass without one, and 20 more of the
	// standby after the hand-over. A cooldown alone would evict again 5 s
	// after each eviction.
	cycles0 := lead.cycles(t)
	err = wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		return lead.cycles(t)-cycles0 >= 20, nil
	})
	if err != nil {
		t.Fatalf("the rescheduler stopped cycling: %v", err)
	}
	if again := lead.evictions(t, "traffic"); again != evicted {
		t.Errorf("%.0f more evictions in the 20 cycles after %d bounces: the rescheduler did not back off", again-evicted, bounces)
	}
	if testutil.ToFloat64(lead.m.Decisions.WithLabelValues("bounce_backoff")) == 0 {
		t.Errorf("decision bounce_backoff never counted")
	}

	// Hand-over: once the third bounce's Event is in the cluster, the
	// leader stops; the standby must not start the moves over.
	err = wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := e.c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=" + rescheduler.ReasonMoveBounced})
		if err != nil {
			return false, err
		}
		for _, ev := range list.Items {
			if ev.Annotations["ning.io/move-bounces"] == fmt.Sprint(bounces) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no %s Event with %d bounces: %v", rescheduler.ReasonMoveBounced, bounces, err)
	}
	lead.cancel()
	<-lead.done
	err = wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return testutil.ToFloat64(standby.m.Leader) == 1, nil
	})
	if err != nil {
		t.Fatalf("the standby did not take over: %v", err)
	}
	cycles0 = standby.cycles(t)
	err = wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		return standby.cycles(t)-cycles0 >= 20, nil
	})
	if err != nil {
		t.Fatalf("the new leader stopped cycling: %v", err)
	}
	if n := standby.evictions(t, "traffic"); n != 0 {
		t.Errorf("the new leader evicted %.0f pods within the backoff: it lost the memory of the moves", n)
	}
	if testutil.ToFloat64(standby.m.Decisions.WithLabelValues("bounce_backoff")) == 0 {
		t.Errorf("the new leader never counted decision bounce_backoff")
	}
	perSite, ready, total, err := e.placement(e.ctx, ns, "sticky")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ning backed off after %.0f evictions (cooldown %v, then %v, %v, %v after each bounce); the workload runs as %v, %d of %d Ready",
		evicted, cooldown, 2*cooldown, 4*cooldown, 8*cooldown, perSite, ready, total)
	if perSite["a"] != 2 || ready != 2 {
		t.Errorf("the workload runs as %v, %d Ready, want a=2 all Ready", perSite, ready)
	}
}
