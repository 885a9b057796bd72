package explain

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/ning-edge/ning/internal/dashboard"
	"github.com/ning-edge/ning/internal/goldentest"
	"github.com/ning-edge/ning/internal/plugins/trafficlatency"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/testcluster"
	"github.com/ning-edge/ning/internal/topology"
)

// t0 is the explanations' now.
var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// edgeCity is part of examples/edge-city.yaml, with a site edge-x whose
// RTTs no source knows.
const edgeCity = `sites:
  - {name: downtown,     traffic: 400}
  - {name: airport,      traffic: 150}
  - {name: seaport,       traffic: 90}
  - {name: university,   traffic: 220}
  - {name: north-suburb, traffic: 60}
  - {name: cloud,        traffic: 0}
latencyMs:
  downtown:     {airport: 9, seaport: 4, university: 5, north-suburb: 8, cloud: 14}
  airport:      {seaport: 11, university: 13, north-suburb: 10, cloud: 18}
  seaport:       {university: 7, north-suburb: 12, cloud: 17}
  university:   {north-suburb: 6, cloud: 16}
  north-suburb: {cloud: 19}
`

// cluster is a real apiserver holding the edge city's nodes and ning's
// pods, and a store fed as the sources feed it.
type cluster struct {
	cp    *testcluster.ControlPlane
	store *topology.Store
	clock *clocktesting.FakeClock
}

// newCluster makes the nodes (downtown-1 busy, airport-1 and north-suburb-0
// cordoned, the
// cloud node labelled kubernetes.io/role=cloud), the store (the static
// matrix, downtown-university measured 10 s ago at 6 ms, edge-x-downtown
// measured 20 min ago and stale, loads of downtown's nodes) and the pods:
//
//   - shop/web, a Deployment's three replicas on downtown-0, university-0
//     and airport-0, the first with the scheduler's placement note;
//   - shop/cam, within 10 ms of airport and 9 ms of downtown (delay_airport,
//     delay_downtown), on downtown-0;
//   - shop/gate, within 2 ms of north-suburb, pending: its only node is
//     cordoned and every other site is measured too far or not at all.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	ctx := t.Context()
	cp := testcluster.Start(t)
	c := &cluster{cp: cp, clock: clocktesting.NewFakeClock(t0)}
	for _, n := range []testcluster.Node{
		{Name: "downtown-0", Site: "downtown"}, {Name: "downtown-1", Site: "downtown"},
		{Name: "airport-0", Site: "airport"}, {Name: "airport-1", Site: "airport"},
		{Name: "seaport-0", Site: "seaport"}, {Name: "university-0", Site: "university"},
		{Name: "north-suburb-0", Site: "north-suburb"}, {Name: "edge-x-0", Site: "edge-x"},
		{Name: "cloud-0", Site: "cloud", Labels: map[string]string{"kubernetes.io/role": "cloud"}},
	} {
		if _, err := testcluster.CreateReadyNode(ctx, cp.Client, n); err != nil {
			t.Fatal(err)
		}
	}
	cordon(t, cp, "airport-1")
	cordon(t, cp, "north-suburb-0")

	c.store = topology.NewStore(topology.Config{}, c.clock)
	spec, err := topology.ParseSpec([]byte(edgeCity))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.store.LoadSpec(spec); err != nil {
		t.Fatal(err)
	}
	for _, m := range []topology.RTTSample{
		{From: "downtown", To: "university", MeanMs: 6, Sent: 5, Received: 5, At: t0.Add(-10 * time.Second)},
		{From: "edge-x", To: "downtown", MeanMs: 3, Sent: 5, Received: 5, At: t0.Add(-20 * time.Minute)},
	} {
		if err := c.store.ObserveRTT(m); err != nil {
			t.Fatal(err)
		}
	}
	for node, cpu := range map[string]float64{"downtown-0": 0.30, "downtown-1": 0.92} {
		if err := c.store.ObserveLoad(node, topology.Load{CPU: cpu, Updated: t0.Add(-5 * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rs := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d9c7", UID: types.UID("rs-web-5d9c7"), Controller: ptr(true)}
	for name, node := range map[string]string{"web-5d9c7-a": "downtown-0", "web-5d9c7-b": "university-0", "web-5d9c7-c": "airport-0"} {
		createPod(t, cp, name, node, map[string]string{"app": "web", "pod-template-hash": "5d9c7"}, &rs)
	}
	createPod(t, cp, "cam", "downtown-0", map[string]string{"delay_airport": "10", "delay_downtown": "9"}, nil)
	createPod(t, cp, "gate", "", map[string]string{"delay_north-suburb": "2"}, nil)
	// The scheduler's placement note, as its Bind leaves it on the pod.
	a, err := cp.Client.CoreV1().Pods("shop").Get(ctx, "web-5d9c7-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a.Annotations = map[string]string{policy.AnnotationPlacement: "Placed in site downtown (node downtown-0): first replica: serves all 920 req/s at a weighted mean RTT of 4.28 ms"}
	if a, err = cp.Client.CoreV1().Pods("shop").Update(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	a.Status.Conditions = []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0.Add(-30 * time.Second))}}
	if _, err := cp.Client.CoreV1().Pods("shop").UpdateStatus(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return c
}

func ptr[T any](v T) *T { return &v }

func cordon(t *testing.T, cp *testcluster.ControlPlane, name string) {
	t.Helper()
	n, err := cp.Client.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.Unschedulable = true
	if _, err := cp.Client.CoreV1().Nodes().Update(t.Context(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func createPod(t *testing.T, cp *testcluster.ControlPlane, name, node string, labels map[string]string, owner *metav1.OwnerReference) {
	t.Helper()
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: labels},
		Spec: v1.PodSpec{SchedulerName: dashboard.DefaultSchedulerName, NodeName: node,
			Containers: []v1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
	}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	if _, err := cp.Client.CoreV1().Pods("shop").Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) explain(t *testing.T, kind, name, output string) string {
	t.Helper()
	var b bytes.Buffer
	err := Run(t.Context(), Config{
		View: dashboard.View{Client: c.cp.Client, Store: c.store}, Kind: kind, Namespace: "shop", Name: name,
		Timeout: 30 * time.Second, Output: output, Out: &b, Clock: c.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestExplainGolden explains, against a real apiserver, a pod placed by
// preference, one constrained by delay_<from>, one left pending, and the
// Deployment's next replica (table and JSON).
func TestExplainGolden(t *testing.T) {
	c := newCluster(t)
	for _, tt := range []struct{ golden, kind, name, output string }{
		{"pod-preference.golden", KindPod, "web-5d9c7-a", "table"},
		{"pod-delay.golden", KindPod, "cam", "table"},
		{"pod-pending.golden", KindPod, "gate", "table"},
		{"deployment.golden", KindDeployment, "web", "table"},
		{"deployment-json.golden", KindDeployment, "web", "json"},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			goldentest.Check(t, tt.golden, c.explain(t, tt.kind, tt.name, tt.output))
		})
	}
}

// TestExplainFacts checks the explanations' key facts, so that a golden
// file rewritten with -update cannot hide a wrong verdict.
func TestExplainFacts(t *testing.T) {
	c := newCluster(t)
	decode := func(kind, name string) Explanation {
		var e Explanation
		if err := json.Unmarshal([]byte(c.explain(t, kind, name, "json")), &e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	site := func(e Explanation, name string) Site {
		for _, s := range e.Sites {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no site %s", name)
		return Site{}
	}
	node := func(e Explanation, name string) Node {
		for _, n := range e.Nodes {
			if n.Name == name {
				return n
			}
		}
		t.Fatalf("no node %s", name)
		return Node{}
	}

	web := decode(KindPod, "web-5d9c7-a")
	if web.Choice == nil || web.Choice.Site != "downtown" || web.Choice.Node != "downtown-0" {
		t.Errorf("web-5d9c7-a: choice %+v, want downtown-0", web.Choice)
	}
	if n := node(web, "downtown-1"); !strings.HasPrefix(n.Filter, "NodeLoad: ") {
		t.Errorf("downtown-1 at 92%% CPU: filter %q, want NodeLoad's rejection", n.Filter)
	}
	if n := node(web, "airport-1"); !strings.HasPrefix(n.Filter, "not schedulable") {
		t.Errorf("cordoned airport-1: filter %q", n.Filter)
	}
	if s := site(web, "cloud"); s.Usable {
		t.Error("the cloud site is usable although edge sites are")
	}
	if web.Actual.Replicas["downtown"] != 1 || web.Actual.Replicas["university"] != 1 || web.Actual.Replicas["airport"] != 1 {
		t.Errorf("actual %v", web.Actual.Replicas)
	}
	if web.Planned.WeightedRTTMs == nil || web.Actual.WeightedRTTMs == nil || *web.Planned.WeightedRTTMs > *web.Actual.WeightedRTTMs {
		t.Errorf("planned %v, actual %v: the plan must be known and no worse", web.Planned.WeightedRTTMs, web.Actual.WeightedRTTMs)
	}
	if web.RunnerUp == nil || web.RunnerUp.Why == "" {
		t.Errorf("runner-up %+v: want one, with why it lost", web.RunnerUp)
	}

	cam := decode(KindPod, "cam")
	if s := site(cam, "north-suburb"); !s.OK || s.Usable {
		t.Errorf("cam at north-suburb: verdict %v, usable %v: want met, but no schedulable node", s.OK, s.Usable)
	}
	for name, ok := range map[string]bool{"downtown": true, "airport": true, "north-suburb": true, "seaport": false, "university": false, "cloud": false, "edge-x": false} {
		if s := site(cam, name); s.OK != ok {
			t.Errorf("cam at %s: verdict %v (%s), want %v", name, s.OK, s.Reason, ok)
		}
	}
	if s := site(cam, "university"); len(s.RTTs) != 2 || s.RTTs[0].Ms == nil || *s.RTTs[0].Ms != 13 || !s.RTTs[0].Static {
		t.Errorf("cam at university: RTTs %+v, want the static 13 ms from airport", s.RTTs)
	} else if r := s.RTTs[1]; r.Ms == nil || *r.Ms != 6 || r.Static || r.Measured == nil || !r.Measured.Equal(t0.Add(-10*time.Second)) {
		t.Errorf("cam at university: RTT from downtown %+v, want the 6 ms measured 10 s ago", r)
	}
	if s := site(cam, "edge-x"); len(s.RTTs) != 2 || s.RTTs[0].Ms != nil || !strings.Contains(s.Reason, "no RTT measurement") {
		t.Errorf("cam at edge-x: %+v, want an unknown RTT", s)
	} else if r := s.RTTs[1]; r.Ms != nil || r.Measured == nil || !r.Measured.Equal(t0.Add(-20*time.Minute)) {
		t.Errorf("cam at edge-x: RTT from downtown %+v, want unknown, measured 20 min ago (stale)", r)
	}

	gate := decode(KindPod, "gate")
	if gate.Pod == nil || gate.Pod.Node != "" || gate.Choice != nil {
		t.Errorf("gate: pod %+v, choice %+v: want pending with no site", gate.Pod, gate.Choice)
	}
	for _, s := range gate.Sites {
		if s.Usable {
			t.Errorf("gate: site %s usable", s.Name)
		}
	}
	if gate.FailedOpen {
		t.Error("gate: a measured breach must keep the constraints closed")
	}
}

// TestExplainErrors checks the errors a person sees.
func TestExplainErrors(t *testing.T) {
	c := newCluster(t)
	for _, tt := range []struct{ kind, name, want string }{
		{KindPod, "nope", "pod shop/nope: not found"},
		{KindDeployment, "nope", "deployment shop/nope: no live pods with schedulerName ning-scheduler: not found"},
	} {
		var b bytes.Buffer
		err := Run(context.WithoutCancel(t.Context()), Config{View: dashboard.View{Client: c.cp.Client, Store: c.store},
			Kind: tt.kind, Namespace: "shop", Name: tt.name, Timeout: 30 * time.Second, Out: &b, Clock: c.clock})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s %s: error %v, want %q", tt.kind, tt.name, err, tt.want)
		}
	}
}

// TestChooseUnlistedNode: a pod bound to a node the node list does not hold
// (deleted before the pod, or joined since the list) is said so, not put in
// whichever site comes first, and no listed node at all is no panic.
func TestChooseUnlistedNode(t *testing.T) {
	e := &Explanation{Pod: &Pod{Name: "web-0", Node: "gone-0", Site: "gone-0"}}
	c, runnerUp := choose(e, nil, nil, nil, map[string]int{})
	if c == nil || c.Site != "gone-0" || c.Node != "gone-0" || !strings.Contains(c.Why, "not among the nodes listed") || runnerUp != nil {
		t.Errorf("choice %+v, runner-up %+v; want gone-0 said to be unlisted, no runner-up", c, runnerUp)
	}
}

// TestExplainSiteLimits: the planner's placement in explain honours the
// workload's ning.io/max-per-site, as the rescheduler's plan does
// (policy.SiteLimits.Apply). At 100 req/s per replica the planner puts
// more than two of eight replicas where the traffic is; with at most two
// per site it deals them over four sites or more, and a full site's nodes
// fail TrafficLatency's Filter with the reason.
func TestExplainSiteLimits(t *testing.T) {
	c := newCluster(t)
	plan := func(name string, labels map[string]string, nodes ...string) Explanation {
		t.Helper()
		rs := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name + "-77f", UID: types.UID("rs-" + name), Controller: ptr(true)}
		for i, node := range nodes {
			l := map[string]string{"app": name, "pod-template-hash": "77f"}
			maps.Copy(l, labels)
			createPod(t, c.cp, fmt.Sprintf("%s-77f-%d", name, i), node, l, &rs)
		}
		var b bytes.Buffer
		err := Run(t.Context(), Config{
			View: dashboard.View{Client: c.cp.Client, Store: c.store, Options: dashboard.Options{PerReplicaRPS: 100}},
			Kind: KindDeployment, Namespace: "shop", Name: name, Timeout: 30 * time.Second, Output: "json", Out: &b, Clock: c.clock,
		})
		if err != nil {
			t.Fatal(err)
		}
		var e Explanation
		if err := json.Unmarshal(b.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	eight := []string{"downtown-0", "downtown-0", "", "", "", "", "", ""}
	free := plan("free", nil, eight...)
	stacked := false
	for _, n := range free.Planned.Replicas {
		stacked = stacked || n > 2
	}
	if !stacked || free.Limits != "" {
		t.Fatalf("without a limit the planner stacks no site (%v, limits %q): the case below proves nothing", free.Planned.Replicas, free.Limits)
	}

	api := plan("api", map[string]string{policy.LabelMaxPerSite: "2"}, eight...)
	total := 0
	for site, n := range api.Planned.Replicas {
		total += n
		if n > 2 {
			t.Errorf("planned %d replicas in %s, over its limit of 2", n, site)
		}
	}
	if total != 8 {
		t.Errorf("planned %v: want all 8 replicas", api.Planned.Replicas)
	}
	if api.Limits != "at most 2 replicas per site ("+policy.LabelMaxPerSite+")" {
		t.Errorf("limits %q", api.Limits)
	}
	for _, n := range api.Nodes {
		if n.Site == "downtown" && n.Filter != "" && !strings.HasPrefix(n.Filter, "NodeLoad") &&
			n.Filter != trafficlatency.Name+": site downtown holds 2 replicas of the workload, the most its "+policy.LabelMaxPerSite+" label allows (2)" {
			t.Errorf("node %s: filter %q", n.Name, n.Filter)
		}
		if n.Name == "downtown-0" && n.Filter == "" {
			t.Error("downtown-0 passes although downtown holds the two replicas of api allowed there")
		}
	}

	bad := plan("bad", map[string]string{policy.LabelMaxPerSite: "lots"}, "")
	if !strings.Contains(bad.LimitError, trafficlatency.Name+" rejects every node") || bad.Planned.Replicas != nil {
		t.Errorf("a malformed limit: limit error %q, planned %v", bad.LimitError, bad.Planned.Replicas)
	}
}

// TestExplainNoPenalty: with 50 req/s entering at edge-x, whose RTTs to the
// replicas' sites are unknown, one more replica's gain counts that traffic
// at placement's unknown-RTT penalty. No figure built on it reaches the
// table or the JSON: the gains in ms and raw scores are left out with a
// note saying why, and the words say what happens.
func TestExplainNoPenalty(t *testing.T) {
	c := newCluster(t)
	if err := c.store.SetTraffic("edge-x", 50, time.Time{}, true); err != nil {
		t.Fatal(err)
	}
	// The penalty (100000 ms), a gain built on it (99990 ms and so on), or
	// a raw score built on one (99990 ms is 99990000 µs, times 1024); not
	// the digits after a decimal point, nor the totals (at most 6 digits).
	penalty := regexp.MustCompile(`(?:^|[^.\d])(100000|9999\d|\d{8,})`)
	table := c.explain(t, KindDeployment, "web", "table")
	if m := penalty.FindAllString(table, -1); m != nil {
		t.Errorf("the table shows %v, built on the unknown-RTT penalty:\n%s", m, table)
	}
	if !strings.Contains(table, "* TrafficLatency's raw score and gain in ms are not shown where some traffic reaches no replica at a known RTT") {
		t.Errorf("the table does not say why the raw scores are left out:\n%s", table)
	}
	js := c.explain(t, KindDeployment, "web", "json")
	if m := penalty.FindAllString(js, -1); m != nil {
		t.Errorf("the JSON shows %v, built on the unknown-RTT penalty:\n%s", m, js)
	}
	var e Explanation
	if err := json.Unmarshal([]byte(js), &e); err != nil {
		t.Fatal(err)
	}
	for _, s := range e.Sites {
		if s.GainMs != nil || s.Raw != nil {
			t.Errorf("site %s: a gain in ms or a raw score shown although edge-x's traffic is at an unknown RTT", s.Name)
		}
		if s.Name == "downtown" && !strings.Contains(s.Gain, "RTT unknown from 50 req/s") {
			t.Errorf("downtown: gain %q does not say edge-x's traffic is at an unknown RTT", s.Gain)
		}
	}
	if e.Actual.WeightedRTTMs != nil {
		t.Errorf("actual weighted RTT %v ms although 50 req/s reach no replica at a known RTT", *e.Actual.WeightedRTTMs)
	}
}
