package dashboard

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/ning-edge/ning/internal/testcluster"
)

// unreachable is a real clientset for an apiserver that is not there: for
// tests in which the collector must not, or cannot, reach one.
func unreachable(t *testing.T) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(&rest.Config{Host: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewCollectorRejectsBadOptions(t *testing.T) {
	client, store := unreachable(t), fixtureStore(t)
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{History: -1}, "history -1"},
		{Options{Interval: -time.Second}, "interval -1s"},
		{Options{Decisions: -3}, "decisions -3"},
		{Options{PerReplicaRPS: -1}, "per-replica rate -1"},
	} {
		if _, err := NewCollector(client, store, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewCollector(%+v): want an error with %q, got %v", c.o, c.want, err)
		}
	}
	if _, err := NewCollector(nil, store, Options{}); err == nil {
		t.Error("NewCollector without a client: want an error")
	}
	if _, err := NewCollector(client, nil, Options{}); err == nil {
		t.Error("NewCollector without a store: want an error")
	}
}

// TestCollectorHistory runs a collector over a real apiserver and a fake
// clock: samples are taken every interval, the ring keeps the newest
// History of them in order, and pods of other schedulers are left out.
func TestCollectorHistory(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	in := fixtureInputs()
	other := podOf("shop", "other", "", "", "toronto-1")
	other.Spec.SchedulerName = "default-scheduler"
	client := testcluster.Start(t).Client
	if _, err := client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*v1.Node{in.nodes[0], in.nodes[2]} {
		if _, err := client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.CoreV1().Pods("shop").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(t0)
	c, err := NewCollector(client, fixtureStore(t), Options{History: 3, Interval: time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Snapshot(); s.Synced || len(s.Sites) != 0 || c.Healthy() == nil {
		t.Errorf("before Run: want an unsynced, empty snapshot and unhealthy, got %+v", s)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Healthy(); err != nil {
		t.Errorf("after sync: %v", err)
	}
	if err := c.Run(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("a second Run: %v", err)
	}

	// Replicas per site: 1 in dallas, then 2 in dallas, then 2 + 1 in toronto,
	// then 2 + 2: four samples through a ring of three.
	steps := []struct {
		pod, node string
	}{{"a", "dallas-1"}, {"b", "dallas-1"}, {"c", "toronto-1"}, {"d", "toronto-1"}}
	for i, st := range steps {
		if _, err := client.CoreV1().Pods("shop").Create(ctx, podOf("shop", st.pod, "rs", "", st.node), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return c.Snapshot().Workloads != nil && c.Snapshot().Workloads[0].Total() == i+1 })
		waitFor(t, clk.HasWaiters)
		clk.Step(time.Second)
		waitFor(t, func() bool {
			h := c.Snapshot().History
			return len(h) > 0 && h[len(h)-1].Time.Equal(clk.Now())
		})
	}
	s := c.Snapshot()
	var got []map[string]int
	for _, smp := range s.History {
		got = append(got, smp.Replicas)
	}
	want := []map[string]int{{"dallas": 2}, {"dallas": 2, "toronto": 1}, {"dallas": 2, "toronto": 2}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("history, oldest first (-want +got):\n%s", d)
	}
	if !s.History[0].Time.Equal(t0.Add(2*time.Second)) || !s.History[2].Time.Equal(t0.Add(4*time.Second)) {
		t.Errorf("history times: %v .. %v", s.History[0].Time, s.History[2].Time)
	}
	if len(s.Workloads) != 1 || s.Workloads[0].Key() != "shop/rs" {
		t.Errorf("only ning's pods are shown: %+v", s.Workloads)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}

func TestRunFailsWhenNeverSynced(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	c, err := NewCollector(unreachable(t), fixtureStore(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(ctx); err == nil || !strings.Contains(err.Error(), "listing nodes, pods and events") {
		t.Errorf("Run with a done context: %v", err)
	}
	if err := c.WaitSynced(ctx); err == nil {
		t.Error("WaitSynced with a done context: want an error")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatal("condition not met within 10s")
	}
}
