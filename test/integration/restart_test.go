package integration

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ning-edge/ning/internal/rescheduler"
	"github.com/ning-edge/ning/internal/testcluster"
)

// TestAPIServerRestart stops the kube-apiserver for longer than the
// rescheduler's node-down delay, under the scheduler, the rescheduler, the
// controllers and the simulated kubelets, and starts it again on the same
// etcd. Node Leases go unrenewed while it is down; the rescheduler must not
// take that for dead nodes, nor evict anything from the caches of before.
// Then both must work without a restart: a new workload is scheduled, and a
// traffic shift moves pods.
func TestAPIServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the apiserver: skipped in -short (make test-integration runs it)")
	}
	const down = 8 * time.Second
	r := testcluster.StartRestartable(t)
	e := startReschedEnvOn(t, r.ControlPlane, reschedOptions{replicas: 1,
		lease: rescheduler.LeaderConfig{LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second},
		edit:  func(c *rescheduler.Config) { c.NodeDownAfter = 5 * time.Second }})
	lead, _ := e.leader(t)
	ns := e.namespace(t)
	e.createDeployment(t, ns, "web", 4, nil, 3)
	e.waitPlacement(t, ns, "web", planFor(t, map[string]float64{"a": 100}, 4), 60*time.Second)

	before := lead.evictions(t, "")
	t.Logf("stopping the apiserver for %v (the rescheduler's node-down delay is 5s)", down)
	if err := r.Restart(down); err != nil {
		t.Fatal(err)
	}
	// Give the rescheduler well over its node-down delay on the new apiserver.
	time.Sleep(8 * time.Second)
	if after := lead.evictions(t, ""); after != before {
		t.Errorf("%.0f evictions or deletions after the apiserver came back: acting on stale state", after-before)
	}
	nodes, err := e.c.CoreV1().Nodes().List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		for _, tn := range n.Spec.Taints {
			if tn.Key == rescheduler.TaintNodeDown {
				t.Errorf("node %s tainted down after the apiserver restart", n.Name)
			}
		}
	}
	if testutil.ToFloat64(lead.m.Leader) != 1 {
		t.Errorf("the rescheduler stopped leading across the restart")
	}

	// The scheduler still schedules, and the rescheduler still moves pods.
	e.createDeployment(t, ns, "after", 2, nil, 0)
	e.waitPlacement(t, ns, "after", planFor(t, map[string]float64{"a": 100}, 2), 60*time.Second)
	shifted := map[string]float64{"a": 10, "c": 100}
	setTraffic(t, e.store, shifted)
	ctx, cancel := context.WithTimeout(e.ctx, 60*time.Second)
	defer cancel()
	e.waitPlacement(t, ns, "web", planFor(t, shifted, 4), time.Until(deadlineOf(ctx)))
	t.Logf("after the restart: new pods scheduled, and web followed the traffic with %.0f evictions", lead.evictions(t, "traffic")-before)
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}
