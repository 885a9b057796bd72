package extender

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/testcluster"
	"github.com/ning-edge/ning/internal/topology"
)

// Sites a, b, c (two nodes each) and a cloud node: most traffic enters at a;
// c is far from a. The same figures as the scheduler's integration test.
var (
	testRTT     = map[[2]string]float64{{"a", "b"}: 10, {"a", "c"}: 40, {"b", "c"}: 30}
	testTraffic = map[string]float64{"a": 100, "b": 10, "c": 5}
	allNodes    = []string{"a-0", "a-1", "b-0", "b-1", "c-0", "c-1", "cloud-0"}
)

func makeNode(name, site string, labels ...string) *v1.Node {
	l := map[string]string{v1.LabelTopologyZone: site}
	for i := 0; i+1 < len(labels); i += 2 {
		l[labels[i]] = labels[i+1]
	}
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
}

func testNodes() []runtime.Object {
	var out []runtime.Object
	for _, name := range allNodes[:6] {
		out = append(out, makeNode(name, name[:1]))
	}
	return append(out, makeNode("cloud-0", "cloud", "kubernetes.io/role", "cloud"))
}

func makePod(name string, labels map[string]string) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), Labels: labels},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}}}
}

// startCluster starts a real kube-apiserver (embedded etcd) holding objs,
// nodes and pods, and returns a client for it.
func startCluster(t testing.TB, objs ...runtime.Object) kubernetes.Interface {
	t.Helper()
	cp := testcluster.Start(t)
	ctx := context.Background()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *v1.Node:
			_, err = cp.Client.CoreV1().Nodes().Create(ctx, o, metav1.CreateOptions{})
		case *v1.Pod:
			_, err = cp.Client.CoreV1().Pods(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			err = fmt.Errorf("startCluster: no support for %T", o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return cp.Client
}

type testEnv struct {
	x      *Extender
	client kubernetes.Interface
	store  *topology.Store
	reg    *prometheus.Registry
	h      http.Handler
}

// newEnv starts an extender over a real apiserver holding objs, with the test
// topology in its store, and waits until its index has every node and bound pod.
func newEnv(t testing.TB, objs ...runtime.Object) *testEnv {
	t.Helper()
	return newEnvConfig(t, Config{}, objs...)
}

// newEnvConfig is newEnv with the extender configured by cfg.
func newEnvConfig(t testing.TB, cfg Config, objs ...runtime.Object) *testEnv {
	t.Helper()
	store := topology.NewStore(topology.Config{}, clock.RealClock{})
	for k, v := range testRTT {
		if err := store.SetStaticRTT(k[0], k[1], v); err != nil {
			t.Fatal(err)
		}
	}
	for site, v := range testTraffic {
		if err := store.SetTraffic(site, v, time.Time{}, true); err != nil {
			t.Fatal(err)
		}
	}
	client := startCluster(t, objs...)
	f := informers.NewSharedInformerFactory(client, 0)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	x, err := New(f, store, cfg, m, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	err = wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		for _, o := range objs {
			switch o := o.(type) {
			case *v1.Node:
				if _, ok := x.index.SiteOfNode(o.Name); !ok {
					return false, nil
				}
			case *v1.Pod:
				if o.Spec.NodeName != "" && len(x.index.Counts(o.OwnerReferences[0].UID, "")) == 0 {
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("index never caught up: %v", err)
	}
	h := x.Handler(HandlerOptions{Gatherer: reg, Ready: func() bool { return true }})
	x.client = client
	return &testEnv{x: x, client: client, store: store, reg: reg, h: h}
}

// post sends body to path and returns the status code and body.
func (e *testEnv) post(t testing.TB, path string, body []byte) (int, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)))
	return rec.Code, rec.Body.Bytes()
}

// args builds ExtenderArgs as kube-scheduler does: node names when
// nodeCacheCapable, else whole Node objects.
func args(t testing.TB, pod *v1.Pod, names []string, byName bool) []byte {
	t.Helper()
	a := extenderv1.ExtenderArgs{Pod: pod}
	if byName {
		a.NodeNames = &names
	} else {
		a.Nodes = &v1.NodeList{}
		for _, o := range testNodes() {
			n := o.(*v1.Node)
			for _, name := range names {
				if n.Name == name {
					a.Nodes.Items = append(a.Nodes.Items, *n)
				}
			}
		}
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// filterOutcome is what a filter result says, the same in both modes.
type filterOutcome struct {
	Pass         []string
	Failed       map[string]string
	Unresolvable map[string]string
}

func outcome(t *testing.T, body []byte, byName bool) filterOutcome {
	t.Helper()
	var r extenderv1.ExtenderFilterResult
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	if r.Error != "" {
		t.Fatalf("result error %q", r.Error)
	}
	o := filterOutcome{Pass: []string{}, Failed: r.FailedNodes, Unresolvable: r.FailedAndUnresolvableNodes}
	switch {
	case byName && r.NodeNames != nil && r.Nodes == nil:
		o.Pass = append(o.Pass, *r.NodeNames...)
	case !byName && r.Nodes != nil && r.NodeNames == nil:
		for _, n := range r.Nodes.Items {
			o.Pass = append(o.Pass, n.Name)
		}
	default:
		t.Fatalf("result in the wrong mode (byName %v): %s", byName, body)
	}
	sort.Strings(o.Pass)
	return o
}

func TestFilter(t *testing.T) {
	anchor := makePod("anchor", nil)
	anchor.Spec.NodeName = "c-1"
	anchor.OwnerReferences = []metav1.OwnerReference{{UID: "anchor-owner", Controller: ptr.To(true), Kind: "ReplicaSet", Name: "x", APIVersion: "apps/v1"}}
	e := newEnv(t, append(testNodes(), anchor)...)
	if err := e.store.ObserveLoad("b-1", topology.Load{CPU: 0.9, Updated: time.Now()}); err != nil {
		t.Fatal(err)
	}
	farFromC := func(ms string) map[string]string {
		out := map[string]string{}
		for _, n := range []string{"a-0", "a-1"} {
			out[n] = "delay_c " + ms + "ms: a is 40.0ms from c"
		}
		for _, n := range []string{"b-0", "b-1"} {
			out[n] = "delay_c " + ms + "ms: b is 30.0ms from c"
		}
		return out
	}
	busy := map[string]string{"b-1": "node b-1: CPU utilisation 90% is at or above the 85% limit"}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		nodes  []string
		want   filterOutcome
	}{{
		name: "no constraint: all but the busy node",
		want: filterOutcome{Pass: []string{"a-0", "a-1", "b-0", "c-0", "c-1", "cloud-0"}, Failed: busy, Unresolvable: map[string]string{}},
	}, {
		name:   "delay from a site",
		labels: map[string]string{"delay_c": "15"},
		nodes:  allNodes[:6],
		want:   filterOutcome{Pass: []string{"c-0", "c-1"}, Failed: map[string]string{}, Unresolvable: farFromC("15")},
	}, {
		name:   "delay from a node, load still applies",
		labels: map[string]string{"delay_c-0": "35"},
		nodes:  allNodes[:6],
		want: filterOutcome{Pass: []string{"b-0", "c-0", "c-1"}, Failed: busy, Unresolvable: map[string]string{
			"a-0": "delay_c-0 35ms: a is 40.0ms from c-0 (site c)", "a-1": "delay_c-0 35ms: a is 40.0ms from c-0 (site c)"}},
	}, {
		name:   "delay from a pod",
		labels: map[string]string{"delay_anchor": "1"},
		nodes:  []string{"a-0", "c-0"},
		want: filterOutcome{Pass: []string{"c-0"}, Failed: map[string]string{}, Unresolvable: map[string]string{
			"a-0": "delay_anchor 1ms: a is 40.0ms from anchor (site c)"}},
	}, {
		name:   "from names nothing: resolvable",
		labels: map[string]string{"delay_nowhere": "10"},
		nodes:  []string{"a-0", "c-0"},
		want: filterOutcome{Pass: []string{}, Unresolvable: map[string]string{}, Failed: map[string]string{
			"a-0": "delay_nowhere 10ms: no node, site or pod named nowhere", "c-0": "delay_nowhere 10ms: no node, site or pod named nowhere"}},
	}, {
		name:   "malformed label: unresolvable, with the parser's message",
		labels: map[string]string{"delay_a": "soon"},
		nodes:  []string{"a-0"},
		want: filterOutcome{Pass: []string{}, Failed: map[string]string{}, Unresolvable: map[string]string{
			"a-0": `label delay_a="soon" is not a delay in milliseconds (want e.g. "25" or "25ms")`}},
	}, {
		name:   "unknown RTT fails closed while a measured site fits",
		labels: map[string]string{"delay_a": "20"},
		nodes:  []string{"a-0", "cloud-0"},
		want: filterOutcome{Pass: []string{"a-0"}, Failed: map[string]string{}, Unresolvable: map[string]string{
			"cloud-0": "delay_a 20ms: no RTT measurement between a and cloud"}},
	}, {
		// No measured RTT breaks 50 ms from a anywhere: NetworkLatency's
		// PostFilter condition.
		name:   "only unknown RTTs reject every node: fail open",
		labels: map[string]string{"delay_a": "50"},
		nodes:  []string{"cloud-0"},
		want:   filterOutcome{Pass: []string{"cloud-0"}, Failed: map[string]string{}, Unresolvable: map[string]string{}},
	}} {
		for _, byName := range []bool{true, false} {
			t.Run(tc.name+map[bool]string{true: "/names", false: "/nodes"}[byName], func(t *testing.T) {
				nodes := tc.nodes
				if nodes == nil {
					nodes = allNodes
				}
				code, body := e.post(t, "/filter", args(t, makePod("p", tc.labels), nodes, byName))
				if code != http.StatusOK {
					t.Fatalf("code %d: %s", code, body)
				}
				if diff := cmp.Diff(tc.want, outcome(t, body, byName)); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestFilterSiteLimits: /filter rejects, unresolvably, the nodes of a site
// that holds its limit of the pod's workload (policy.SiteLimits), as
// TrafficLatency's Filter does: the workload runs one pod on c-1, site a's
// capacity is 0 by a node's label.
func TestFilterSiteLimits(t *testing.T) {
	owner := []metav1.OwnerReference{{UID: "web-owner", Controller: ptr.To(true), Kind: "ReplicaSet", Name: "web", APIVersion: "apps/v1"}}
	running := makePod("web-0", nil)
	running.Spec.NodeName, running.OwnerReferences = "c-1", owner
	nodes := testNodes()
	nodes[0] = makeNode("a-0", "a", policy.LabelSiteCapacity, "0")
	e := newEnv(t, append(nodes, running)...)
	fullA := "site a holds 0 replicas of the workload, its capacity (0)"
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   filterOutcome
	}{{
		name: "site capacity only",
		want: filterOutcome{Pass: []string{"b-0", "b-1", "c-0", "c-1"}, Failed: map[string]string{},
			Unresolvable: map[string]string{"a-0": fullA, "a-1": fullA}},
	}, {
		name:   "max-per-site 1: c holds one already",
		labels: map[string]string{policy.LabelMaxPerSite: "1"},
		want: filterOutcome{Pass: []string{"b-0", "b-1"}, Failed: map[string]string{}, Unresolvable: map[string]string{
			"a-0": fullA, "a-1": fullA,
			"c-0": "site c holds 1 replicas of the workload, the most its ning.io/max-per-site label allows (1)",
			"c-1": "site c holds 1 replicas of the workload, the most its ning.io/max-per-site label allows (1)"}},
	}, {
		name:   "malformed max-per-site: every node, with the parser's message",
		labels: map[string]string{policy.LabelMaxPerSite: "-1"},
		want: filterOutcome{Pass: []string{}, Failed: map[string]string{}, Unresolvable: map[string]string{
			"a-0": `label ning.io/max-per-site="-1" is outside 0..1000000`, "a-1": `label ning.io/max-per-site="-1" is outside 0..1000000`,
			"b-0": `label ning.io/max-per-site="-1" is outside 0..1000000`, "b-1": `label ning.io/max-per-site="-1" is outside 0..1000000`,
			"c-0": `label ning.io/max-per-site="-1" is outside 0..1000000`, "c-1": `label ning.io/max-per-site="-1" is outside 0..1000000`}},
	}} {
		for _, byName := range []bool{true, false} {
			t.Run(tc.name+map[bool]string{true: "/names", false: "/nodes"}[byName], func(t *testing.T) {
				pod := makePod("web-1", tc.labels)
				pod.OwnerReferences = owner
				a := extenderv1.ExtenderArgs{Pod: pod}
				if byName {
					a.NodeNames = ptr.To(allNodes[:6])
				} else {
					a.Nodes = &v1.NodeList{}
					for _, o := range nodes[:6] {
						a.Nodes.Items = append(a.Nodes.Items, *o.(*v1.Node))
					}
				}
				req, err := json.Marshal(a)
				if err != nil {
					t.Fatal(err)
				}
				code, body := e.post(t, "/filter", req)
				if code != http.StatusOK {
					t.Fatalf("code %d: %s", code, body)
				}
				if diff := cmp.Diff(tc.want, outcome(t, body, byName)); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestFilterMissingLoad: a node without a fresh load report passes under
// missingLoad Neutral (the default, as TestFilter shows) and is filtered
// out, resolvably, under Filter, seed 004's rule, as NodeLoad does.
func TestFilterMissingLoad(t *testing.T) {
	noReport := func(nodes ...string) map[string]string {
		out := map[string]string{}
		for _, n := range nodes {
			out[n] = "node " + n + ": no fresh load report (missingLoad: Filter)"
		}
		return out
	}
	busy := "node b-1: CPU utilisation 90% is at or above the 85% limit"
	for _, tc := range []struct {
		policy configv1alpha1.MissingLoadPolicy
		want   filterOutcome
	}{
		{configv1alpha1.MissingLoadNeutral, filterOutcome{Pass: []string{"a-0", "a-1", "b-0", "c-0", "c-1", "cloud-0"}, Failed: map[string]string{"b-1": busy}, Unresolvable: map[string]string{}}},
		{configv1alpha1.MissingLoadFilter, filterOutcome{Pass: []string{"a-0"},
			Failed: func() map[string]string {
				m := noReport("a-1", "b-0", "c-0", "c-1", "cloud-0")
				m["b-1"] = busy
				return m
			}(), Unresolvable: map[string]string{}}},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			e := newEnvConfig(t, Config{NodeLoad: configv1alpha1.NodeLoadArgs{MissingLoad: tc.policy}}, testNodes()...)
			for node, cpu := range map[string]float64{"a-0": 0.1, "b-1": 0.9} {
				if err := e.store.ObserveLoad(node, topology.Load{CPU: cpu, Updated: time.Now()}); err != nil {
					t.Fatal(err)
				}
			}
			for _, byName := range []bool{true, false} {
				code, body := e.post(t, "/filter", args(t, makePod("p", nil), allNodes, byName))
				if code != http.StatusOK {
					t.Fatalf("code %d: %s", code, body)
				}
				if diff := cmp.Diff(tc.want, outcome(t, body, byName)); diff != "" {
					t.Errorf("byName %v (-want +got):\n%s", byName, diff)
				}
			}
		})
	}
}

// scores decodes a HostPriorityList into a map.
func scores(t *testing.T, body []byte) map[string]int64 {
	t.Helper()
	var l extenderv1.HostPriorityList
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	out := map[string]int64{}
	for _, h := range l {
		if h.Score < extenderv1.MinExtenderPriority || h.Score > extenderv1.MaxExtenderPriority {
			t.Errorf("%s scored %d, outside 0..%d", h.Host, h.Score, extenderv1.MaxExtenderPriority)
		}
		out[h.Host] = h.Score
	}
	return out
}

func TestPrioritize(t *testing.T) {
	owner := types.UID("rs-web")
	running := makePod("web-0", nil)
	running.OwnerReferences = []metav1.OwnerReference{{UID: owner, Controller: ptr.To(true), Kind: "ReplicaSet", Name: "web", APIVersion: "apps/v1"}}
	running.Spec.NodeName = "a-0"
	e := newEnv(t, append(testNodes(), running)...)
	next := makePod("web-1", nil)
	next.OwnerReferences = running.OwnerReferences

	for _, tc := range []struct {
		name  string
		pod   *v1.Pod
		nodes []string
		load  map[string]float64
		want  map[string]int64
	}{{
		// Empty workload: gains a 2.6 > b 10 > c 37.4 ms of weighted RTT
		// saved below the penalty, so T = 1, 0.79, 0; L = 0.5 (no report):
		// 1 + round(9 (10 T + 1) / 12).
		name: "new workload goes where the traffic is; cloud last",
		pod:  makePod("p", nil),
		want: map[string]int64{"a-0": 9, "a-1": 9, "b-0": 8, "b-1": 8, "c-0": 2, "c-1": 2, "cloud-0": 0},
	}, {
		// One replica in a (from the pod informer): the next one lowers the
		// RTT most in c (1.74 ms), then b (1.30), a not at all.
		name: "second replica of a workload",
		pod:  next,
		want: map[string]int64{"a-0": 2, "a-1": 2, "b-0": 7, "b-1": 7, "c-0": 9, "c-1": 9, "cloud-0": 0},
	}, {
		// Normalised over the nodes asked about: b is the best of b and c.
		name:  "normalised over the request's nodes",
		pod:   makePod("p", nil),
		nodes: []string{"b-0", "c-0"},
		want:  map[string]int64{"b-0": 9, "c-0": 2},
	}, {
		// Load: idle a-0 (L = 1) 10; a-1 at 80 % (L = 0.2 - 0.15 penalty =
		// 0.05) 1 + round(9 x 10.1 / 12) = 9: load moves a node at most 1.5 levels.
		name: "load breaks ties inside a site",
		pod:  makePod("p", nil),
		load: map[string]float64{"a-0": 0, "a-1": 0.8},
		want: map[string]int64{"a-0": 10, "a-1": 9, "b-0": 8, "b-1": 8, "c-0": 2, "c-1": 2, "cloud-0": 0},
	}} {
		for _, byName := range []bool{true, false} {
			t.Run(tc.name+map[bool]string{true: "/names", false: "/nodes"}[byName], func(t *testing.T) {
				for n, cpu := range tc.load {
					if err := e.store.ObserveLoad(n, topology.Load{CPU: cpu, Updated: time.Now()}); err != nil {
						t.Fatal(err)
					}
				}
				nodes := tc.nodes
				if nodes == nil {
					nodes = allNodes
				}
				code, body := e.post(t, "/"+verbPrioritize, args(t, tc.pod, nodes, byName))
				if code != http.StatusOK {
					t.Fatalf("code %d: %s", code, body)
				}
				if diff := cmp.Diff(tc.want, scores(t, body)); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestHandWrittenRequest posts the JSON kube-scheduler 1.34 sends for a
// nodeCacheCapable extender (field names as its Go types, no tags) and checks
// the exact response.
func TestHandWrittenRequest(t *testing.T) {
	e := newEnv(t, testNodes()...)
	req := `{"Pod":{"metadata":{"name":"web-5d9c","namespace":"default","uid":"6b1f","labels":{"app":"web","delay_c":"35ms"}},
	  "spec":{"containers":[{"name":"app","image":"nginx","resources":{"requests":{"cpu":"100m"}}}],"schedulerName":"default-scheduler"},
	  "status":{"phase":"Pending"}},
	  "Nodes":null,"NodeNames":["a-0","b-0","c-0"]}`
	code, body := e.post(t, "/filter", []byte(req))
	want := `{"Nodes":null,"NodeNames":["b-0","c-0"],"FailedNodes":{},"FailedAndUnresolvableNodes":{"a-0":"delay_c 35ms: a is 40.0ms from c"},"Error":""}` + "\n"
	if code != http.StatusOK || string(body) != want {
		t.Fatalf("filter: %d %s\nwant 200 %s", code, body, want)
	}
	code, body = e.post(t, "/"+verbPrioritize, []byte(strings.Replace(req, `"a-0",`, "", 1)))
	want = `[{"Host":"b-0","Score":9},{"Host":"c-0","Score":2}]` + "\n"
	if code != http.StatusOK || string(body) != want {
		t.Fatalf(verbPrioritize+": %d %s\nwant 200 %s", code, body, want)
	}
}

func TestHTTPErrors(t *testing.T) {
	e := newEnv(t, testNodes()...)
	pod := `{"metadata":{"name":"p","namespace":"default"}}`
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"malformed JSON", "POST", "/filter", `{"Pod":`, 400, "malformed ExtenderArgs JSON"},
		{"wrong type", "POST", "/" + verbPrioritize, `{"Pod":[]}`, 400, "malformed ExtenderArgs JSON"},
		{"empty body", "POST", "/filter", ``, 400, "empty request body"},
		{"trailing data", "POST", "/filter", `{"Pod":` + pod + `,"NodeNames":[]} {}`, 400, "data after the ExtenderArgs object"},
		{"no pod", "POST", "/filter", `{"NodeNames":["a-0"]}`, 400, "the request has no Pod"},
		{"null", "POST", "/" + verbPrioritize, `null`, 400, "the request has no Pod"},
		{"no nodes", "POST", "/filter", `{"Pod":` + pod + `}`, 400, "neither NodeNames nor Nodes"},
		{"unknown node", "POST", "/filter", `{"Pod":` + pod + `,"NodeNames":["a-0","ghost"]}`, 400, `node "ghost" is not in the extender's node cache`},
		{"unknown node, second verb", "POST", "/" + verbPrioritize, `{"Pod":` + pod + `,"NodeNames":["ghost"]}`, 400, `node "ghost"`},
		{"nameless node", "POST", "/filter", `{"Pod":` + pod + `,"Nodes":{"items":[{}]}}`, 400, "has no name"},
		{"too large", "POST", "/filter", `{"Pod":` + pod + `,"NodeNames":["` + strings.Repeat("x", DefaultMaxBodyBytes) + `"]}`, 413, "limit"},
		{"wrong method", "GET", "/filter", ``, 405, ""},
		{"unknown path", "POST", "/preempt", `{}`, 404, ""},
		{"empty node list is fine", "POST", "/filter", `{"Pod":` + pod + `,"NodeNames":[]}`, 200, `"NodeNames":[]`},
		{"healthz", "GET", "/healthz", ``, 200, "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.msg) {
				t.Fatalf("got %d %q, want %d containing %q", rec.Code, rec.Body.String(), tc.code, tc.msg)
			}
		})
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`ning_extender_requests_total{code="400",verb="filter"} 7`,
		`ning_extender_requests_total{code="413",verb="filter"} 1`,
		`ning_extender_requests_total{code="405",verb="filter"} 1`,
		`ning_extender_rejected_requests_total{reason="unknown_node"} 3`,
		`ning_extender_rejected_requests_total{reason="malformed_json"} 4`,
		`ning_extender_rejected_requests_total{reason="too_large"} 1`,
		`ning_extender_rejected_requests_total{reason="missing_pod"} 2`,
		`ning_extender_request_duration_seconds_count{code="200",verb="healthz"} 1`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestHealthzNotReady(t *testing.T) {
	e := newEnv(t)
	h := e.x.Handler(HandlerOptions{Ready: func() bool { return false }})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("code %d, want 503", rec.Code)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"defaults", Config{}, ""},
		{"bad label", Config{CloudFallback: configv1alpha1.CloudFallbackArgs{CloudLabel: "not a label!"}}, "cloudFallback.cloudLabel"},
		{"bad missing-load policy", Config{NodeLoad: configv1alpha1.NodeLoadArgs{MissingLoad: "Drop"}}, `nodeLoad.missingLoad: Unsupported value: "Drop"`},
		{"two site labels", Config{TrafficLatency: configv1alpha1.TrafficLatencyArgs{SiteLabel: "x.io/site"}}, "must equal networkLatency.siteLabel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.SetDefaults()
			err := tc.cfg.Validate()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// BenchmarkRequests times one /filter plus one /prioritize (JSON decode,
// work, encode) for a pod with a delay label over 1,000 node names in 20
// sites, as a nodeCacheCapable kube-scheduler sends them.
func BenchmarkRequests(b *testing.B) {
	var objs []runtime.Object
	var names []string
	for i := range 1000 {
		name := fmt.Sprintf("node-%04d", i)
		objs = append(objs, makeNode(name, fmt.Sprintf("s%02d", i%20)))
		names = append(names, name)
	}
	e := newEnv(b, objs...)
	for i := range 20 {
		for j := range 20 {
			if i != j {
				if err := e.store.SetStaticRTT(fmt.Sprintf("s%02d", i), fmt.Sprintf("s%02d", j), float64(5+(i*7+j*3)%50)); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := e.store.SetTraffic(fmt.Sprintf("s%02d", i), float64(1+i), time.Time{}, true); err != nil {
			b.Fatal(err)
		}
	}
	body := args(b, makePod("p", map[string]string{"delay_s03": "40"}), names, true)
	b.ReportAllocs()
	for b.Loop() {
		for _, path := range []string{"/filter", "/" + verbPrioritize} {
			if code, out := e.post(b, path, body); code != http.StatusOK {
				b.Fatalf("%s: %d %s", path, code, out)
			}
		}
	}
}
