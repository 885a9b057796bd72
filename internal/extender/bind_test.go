package extender

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/topology"
)

// rsUID is the workload of the pods the bind tests create.
const rsUID = types.UID("rs-web")

// createPending creates a pending replica of rsUID and returns it as the
// apiserver has it (with its UID).
func createPending(t *testing.T, c kubernetes.Interface, name string) *v1.Pod {
	t.Helper()
	p := makePod(name, nil)
	p.UID = ""
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: rsUID, Controller: ptr.To(true)}}
	got, err := c.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func bindBody(t *testing.T, p *v1.Pod, node string) string {
	t.Helper()
	b, err := json.Marshal(extenderv1.ExtenderBindingArgs{PodName: p.Name, PodNamespace: p.Namespace, PodUID: p.UID, Node: node})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// bindResult posts body to /bind and returns the code and the result's Error.
func (e *testEnv) bindResult(t *testing.T, body string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/bind", strings.NewReader(body)))
	var r extenderv1.ExtenderBindingResult
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("/bind answered %d %q, not an ExtenderBindingResult: %v", rec.Code, rec.Body.String(), err)
	}
	return rec.Code, r.Error
}

// TestBind binds replicas through /bind and checks that each counts in its
// workload's replicas per site as soon as /bind returns, as kube-scheduler's
// next cycle needs, and that the apiserver has the binding.
func TestBind(t *testing.T) {
	e := newEnv(t, testNodes()...)
	ctx := t.Context()
	want := map[string]int{}
	for i, node := range []string{"a-0", "a-1", "b-0"} {
		p := createPending(t, e.client, fmt.Sprintf("web-%d", i))
		if code, msg := e.bindResult(t, bindBody(t, p, node)); code != http.StatusOK || msg != "" {
			t.Fatalf("bind %s to %s: %d %q", p.Name, node, code, msg)
		}
		want[node[:1]]++
		if diff := cmp.Diff(want, e.x.index.Counts(rsUID, "")); diff != "" {
			t.Fatalf("replicas per site right after binding %s (-want +got):\n%s", p.Name, diff)
		}
		got, err := e.client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec.NodeName != node {
			t.Fatalf("pod %s on node %q, want %s", p.Name, got.Spec.NodeName, node)
		}
	}
	if got := testutil.ToFloat64(e.x.metrics.Bound); got != 3 {
		t.Errorf("ning_extender_bound_pods_total = %v, want 3", got)
	}
}

// TestBindAssumeExpiry: a pod bound through /bind stops counting after
// AssumeFor if the pod informer has not seen it bound, and keeps counting if
// it has. The clock is a fake one.
func TestBindAssumeExpiry(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	t.Run("informer saw it bound: it stays", func(t *testing.T) {
		e := newEnv(t, testNodes()...)
		clk := clocktesting.NewFakePassiveClock(now)
		e.x.clock = clk
		p := createPending(t, e.client, "web-0")
		if code, msg := e.bindResult(t, bindBody(t, p, "c-0")); code != http.StatusOK || msg != "" {
			t.Fatalf("bind: %d %q", code, msg)
		}
		err := wait.PollUntilContextTimeout(t.Context(), 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			// The lister's store is updated before the index's event
			// handler runs: wait for the handler too.
			got, err := e.x.pods.Pods(p.Namespace).Get(p.Name)
			return err == nil && got.Spec.NodeName == "c-0" && !e.x.index.Assumed(got), nil
		})
		if err != nil {
			t.Fatalf("the pod informer never saw the binding: %v", err)
		}
		clk.SetTime(now.Add(DefaultAssumeFor))
		e.x.expireAssumed()
		if diff := cmp.Diff(map[string]int{"c": 1}, e.x.index.Counts(rsUID, "")); diff != "" {
			t.Errorf("replicas per site after the assume timeout (-want +got):\n%s", diff)
		}
		if got := testutil.ToFloat64(e.x.metrics.AssumeExpired); got != 0 {
			t.Errorf("ning_extender_assumed_expired_total = %v, want 0", got)
		}
	})
	t.Run("informer never saw it: it expires", func(t *testing.T) {
		// Only the node informer runs: the pod informer never reports the
		// binding (as if its watch were stuck), and /bind reads the pod
		// from the apiserver.
		client := startCluster(t, testNodes()...)
		f := informers.NewSharedInformerFactory(client, 0)
		m, err := NewMetrics(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		x, err := New(f, topology.NewStore(topology.Config{}, clocktesting.NewFakePassiveClock(now)), Config{}, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		clk := clocktesting.NewFakePassiveClock(now)
		x.clock, x.client = clk, client
		nodes := f.Core().V1().Nodes().Informer()
		go nodes.Run(t.Context().Done())
		if !cacheSynced(t, nodes.HasSynced) {
			t.Fatal("node informer never synced")
		}
		e := &testEnv{x: x, client: client, h: x.Handler(HandlerOptions{})}
		p := createPending(t, client, "web-0")
		if code, msg := e.bindResult(t, bindBody(t, p, "b-1")); code != http.StatusOK || msg != "" {
			t.Fatalf("bind: %d %q", code, msg)
		}
		clk.SetTime(now.Add(DefaultAssumeFor - time.Second))
		x.expireAssumed()
		if diff := cmp.Diff(map[string]int{"b": 1}, x.index.Counts(rsUID, "")); diff != "" {
			t.Fatalf("replicas per site before the assume timeout (-want +got):\n%s", diff)
		}
		clk.SetTime(now.Add(DefaultAssumeFor))
		x.expireAssumed()
		if got := x.index.Counts(rsUID, ""); len(got) != 0 {
			t.Errorf("replicas per site after the assume timeout = %v, want none", got)
		}
		if got := testutil.ToFloat64(m.AssumeExpired); got != 1 {
			t.Errorf("ning_extender_assumed_expired_total = %v, want 1", got)
		}
	})
}

func cacheSynced(t *testing.T, synced func() bool) bool {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return synced(), nil
	})
	return err == nil
}

// TestBindErrors sends /bind what kube-scheduler never sends and what it
// can: each gets an ExtenderBindingResult naming what is wrong (400 for
// a malformed request, 200 for one kube-scheduler could send, so that it
// reads the message), counted by reason, and nothing is counted as placed.
func TestBindErrors(t *testing.T) {
	e := newEnv(t, testNodes()...)
	pending := createPending(t, e.client, "pending")
	bound := createPending(t, e.client, "bound")
	if code, msg := e.bindResult(t, bindBody(t, bound, "a-0")); code != http.StatusOK || msg != "" {
		t.Fatalf("bind: %d %q", code, msg)
	}
	err := wait.PollUntilContextTimeout(t.Context(), 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		got, err := e.x.pods.Pods(bound.Namespace).Get(bound.Name)
		return err == nil && got.Spec.NodeName != "", nil
	})
	if err != nil {
		t.Fatalf("the pod informer never saw the binding: %v", err)
	}
	// A pod being deleted (a finalizer holds it): the apiserver refuses
	// the Binding.
	terminating := createPending(t, e.client, "terminating")
	terminating.Finalizers = []string{"example.com/hold"}
	if _, err := e.client.CoreV1().Pods(terminating.Namespace).Update(t.Context(), terminating, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.client.CoreV1().Pods(terminating.Namespace).Delete(t.Context(), terminating.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	recreated := pending.DeepCopy()
	recreated.UID = "uid-of-an-older-pod"
	for _, tc := range []struct {
		name, body string
		code       int
		msg        string
	}{
		{"malformed JSON", `{"PodName":`, 400, "bind: malformed ExtenderBindingArgs JSON: unexpected EOF"},
		{"wrong type", `{"PodName":7}`, 400, "bind: malformed ExtenderBindingArgs JSON: json: cannot unmarshal number into Go struct field ExtenderBindingArgs.PodName of type string"},
		{"empty body", ``, 400, "bind: empty request body: want ExtenderBindingArgs JSON"},
		{"trailing data", bindBody(t, pending, "a-0") + `{}`, 400, "bind: malformed JSON: data after the ExtenderBindingArgs object"},
		{"no pod", `{"Node":"a-0"}`, 400, "bind: the request names no pod: PodName and PodNamespace are required"},
		{"null", `null`, 400, "bind: the request names no pod: PodName and PodNamespace are required"},
		{"no UID", `{"PodName":"pending","PodNamespace":"default","Node":"a-0"}`, 400, "bind: the request for pod default/pending has no PodUID"},
		{"no node", bindBody(t, pending, ""), 400, "bind: the request for pod default/pending names no Node"},
		{"long node name", bindBody(t, pending, strings.Repeat("n", 300)), 400, "bind: the node name is 300 bytes (at most 253)"},
		{"no such pod", `{"PodName":"ghost","PodNamespace":"default","PodUID":"u","Node":"a-0"}`, 200, "bind: pod default/ghost does not exist"},
		{"pod created again", bindBody(t, recreated, "a-0"), 200,
			fmt.Sprintf("bind: pod default/pending has UID %s, not the request's uid-of-an-older-pod (deleted and created again)", pending.UID)},
		{"already bound", bindBody(t, bound, "b-0"), 200, "bind: pod default/bound is already bound to node a-0"},
		// The apiserver's own message follows.
		{"refused by the apiserver", bindBody(t, terminating, "b-0"), 200, "bind: binding pod default/terminating to node b-0: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := e.bindResult(t, tc.body)
			// A want ending in ": " is a prefix: the apiserver's words follow.
			matches := msg == tc.msg || strings.HasSuffix(tc.msg, ": ") && strings.HasPrefix(msg, tc.msg)
			if code != tc.code || !matches {
				t.Fatalf("got %d %q, want %d %q", code, msg, tc.code, tc.msg)
			}
		})
	}
	if diff := cmp.Diff(map[string]int{"a": 1}, e.x.index.Counts(rsUID, "")); diff != "" {
		t.Errorf("replicas per site after the refused binds (-want +got):\n%s", diff)
	}
	for reason, want := range map[string]float64{"malformed_json": 4, "missing_pod": 3, "missing_node": 1, "bad_node_name": 1,
		"unknown_pod": 1, "uid_mismatch": 1, "already_bound": 1, "bind_failed": 1} {
		if got := testutil.ToFloat64(e.x.metrics.Rejected.WithLabelValues(reason)); got != want {
			t.Errorf("ning_extender_rejected_requests_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	got, err := e.client.CoreV1().Pods(pending.Namespace).Get(t.Context(), pending.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.NodeName != "" {
		t.Errorf("pod pending bound to %s by a refused request", got.Spec.NodeName)
	}
}
