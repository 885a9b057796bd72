package integration

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/ning-edge/ning/internal/dashboard"
	"github.com/ning-edge/ning/internal/testcluster"
)

// TestDashboard runs the dashboard's collector against a real apiserver and
// the real ning scheduler: the sites come from the nodes and the store, the
// replicas per site of a ReplicaSet the scheduler placed match the API's
// bindings, its weighted RTT matches a hand computation, the scheduler's
// placement notes and a rescheduler-style core Event show as decisions
// (other Events and other schedulers' pods do not), a node going NotReady
// shows, and the history samples as the clock ticks.
func TestDashboard(t *testing.T) {
	rtt := map[[2]string]float64{{"a", "b"}: 10, {"a", "c"}: 30, {"b", "c"}: 25}
	traffic := map[string]float64{"a": 100, "b": 10}
	e := startEnv(t, staticStore(t, rtt, traffic), true)
	if _, err := testcluster.CreateReadyNode(e.ctx, e.c, testcluster.Node{Name: "lone-0"}); err != nil {
		t.Fatal(err)
	}
	e.site["lone-0"] = "lone-0"
	clk := clocktesting.NewFakeClock(time.Now())
	col, err := dashboard.NewCollector(e.c, e.store, dashboard.Options{History: 4, Interval: time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- col.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("collector: %v", err)
		}
	}()
	if err := col.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}

	ns := e.namespace(t)
	e.createReplicaSet(t, ns, "web", 3, nil)
	bound := e.sitesOf(t, ns, "app=web", 3)
	// A pod of the default scheduler, bound by hand, is not ning's.
	other := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: ns}, Spec: podSpec()}
	other.Spec.SchedulerName, other.Spec.NodeName = v1.DefaultSchedulerName, "c-0"
	if _, err := e.c.CoreV1().Pods(ns).Create(e.ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A ning pod no node can take stays pending.
	e.createPod(t, ns, "stuck", nil, func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"no": "such-node"} })

	var s dashboard.Snapshot
	var web *dashboard.Workload
	poll(t, "3 replicas of web, 1 pending pod and 3 NingPlacement decisions", func() bool {
		s = col.Snapshot()
		web = nil
		placements, pending := 0, 0
		for i := range s.Workloads {
			w := &s.Workloads[i]
			if w.Key() == ns+"/web" {
				web = w
			}
			pending += w.Pending
		}
		for _, d := range s.Decisions {
			if d.Reason == "NingPlacement" && d.Namespace == ns {
				placements++
			}
		}
		return web != nil && web.Total() == 3 && pending == 1 && placements == 3
	})
	if d := cmp.Diff(bound, web.Replicas); d != "" {
		t.Errorf("web's replicas per site against the API's bindings (-api +dashboard):\n%s", d)
	}
	if web.Kind != "ReplicaSet" || web.Name != "web" {
		t.Errorf("web: kind %q name %q", web.Kind, web.Name)
	}
	for _, w := range s.Workloads {
		if w.Name == "other" {
			t.Errorf("a default-scheduler pod is listed: %+v", w)
		}
	}
	// Weighted RTT by hand: each traffic site to its nearest replica site.
	dist := func(a, b string) float64 {
		if a == b {
			return 0
		}
		if v, ok := rtt[[2]string{a, b}]; ok {
			return v
		}
		return rtt[[2]string{b, a}]
	}
	sum := 0.0
	for from, w := range traffic {
		best := math.Inf(1)
		for site := range bound {
			best = math.Min(best, dist(from, site))
		}
		sum += w * best
	}
	if want := sum / 110; web.WeightedRTTMs == nil || math.Abs(*web.WeightedRTTMs-want) > 1e-9 {
		t.Errorf("web's weighted RTT = %v, want %.4f for placement %v", web.WeightedRTTMs, want, bound)
	}
	if d := web.LastDecision; d == nil || d.Reason != "NingPlacement" || !strings.HasPrefix(d.Message, "Placed in site ") {
		t.Errorf("web's last decision: %+v", d)
	}

	names := func(s dashboard.Snapshot) []string {
		var out []string
		for _, st := range s.Sites {
			out = append(out, st.Name)
		}
		return out
	}
	if d := cmp.Diff([]string{"a", "b", "c", "cloud", "lone-0"}, names(s)); d != "" {
		t.Errorf("sites (-want +got):\n%s", d)
	}
	if s.Busiest != "a" || s.RTTMs[0][2] == nil || *s.RTTMs[0][2] != 30 || s.RTTMs[0][3] != nil {
		t.Errorf("busiest %q, RTT a->c %v, a->cloud %v (want 30 and unknown)", s.Busiest, s.RTTMs[0][2], s.RTTMs[0][3])
	}

	// A rescheduler writes core Events; only reasons starting "Ning" count.
	pods, err := e.c.CoreV1().Pods(ns).List(e.ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	victim := pods.Items[0]
	for _, reason := range []string{"NingReschedule", "Killing"} {
		now := metav1.NewTime(time.Now().Add(time.Second))
		ev := &v1.Event{
			ObjectMeta:     metav1.ObjectMeta{GenerateName: victim.Name + ".", Namespace: ns},
			InvolvedObject: v1.ObjectReference{Kind: "Pod", Namespace: ns, Name: victim.Name, UID: victim.UID},
			Reason:         reason, Message: "evicted to move the replica toward site a", Type: v1.EventTypeNormal,
			FirstTimestamp: now, LastTimestamp: now, Count: 1, Source: v1.EventSource{Component: "ning-rescheduler"},
		}
		if _, err := e.c.CoreV1().Events(ns).Create(e.ctx, ev, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A node of site b goes NotReady.
	n, err := e.c.CoreV1().Nodes().Get(e.ctx, "b-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == v1.NodeReady {
			n.Status.Conditions[i].Status = v1.ConditionFalse
		}
	}
	if _, err := e.c.CoreV1().Nodes().UpdateStatus(e.ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the NingReschedule decision first and b at 1/2 ready", func() bool {
		s = col.Snapshot()
		return len(s.Decisions) > 0 && s.Decisions[0].Reason == "NingReschedule" && s.Sites[1].Ready == 1
	})
	for _, d := range s.Decisions {
		if !strings.HasPrefix(d.Reason, "Ning") {
			t.Errorf("a decision that is not ning's: %+v", d)
		}
	}

	// History: one sample per tick, at most four kept.
	for range 5 {
		poll(t, "the collector's ticker", clk.HasWaiters)
		clk.Step(time.Second)
		at := clk.Now()
		poll(t, "a sample at the new time", func() bool {
			h := col.Snapshot().History
			return len(h) > 0 && h[len(h)-1].Time.Equal(at)
		})
	}
	s = col.Snapshot()
	if len(s.History) != 4 {
		t.Fatalf("history holds %d samples, want 4", len(s.History))
	}
	if d := cmp.Diff(bound, s.History[3].Replicas); d != "" {
		t.Errorf("the last sample against the bindings (-api +dashboard):\n%s", d)
	}

	// The same collector behind the handler and in the table.
	srv := httptest.NewServer(dashboard.Handler(col))
	defer srv.Close()
	body := get(t, srv.URL+"/")
	for _, want := range []string{`<table id="heatmap"`, `data-site="lone-0"`, `data-workload="` + ns + `/web"`, "NingReschedule"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	var table strings.Builder
	if err := dashboard.WriteTable(&table, s, ns+"/web"); err != nil {
		t.Fatal(err)
	}
	t.Logf("status table:\n%s", table.String())
	if !strings.Contains(table.String(), "RTT FROM a") || !strings.Contains(table.String(), "last decision for "+ns+"/web") {
		t.Errorf("table:\n%s", table.String())
	}
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, res.StatusCode, err)
	}
	return string(b)
}
