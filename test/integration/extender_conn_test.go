package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler"
	schedapi "k8s.io/kubernetes/pkg/scheduler/apis/config"
	schedframework "k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/ning-edge/ning/internal/extender"
	"github.com/ning-edge/ning/internal/testcluster"
)

// TestExtenderKeepsConnections calls the extender with kube-scheduler's own
// extender client (scheduler.NewHTTPExtender, as the stock scheduler builds
// it from its configuration) for 50 pods over 500 node names, and checks that
// all 100 calls share one TCP connection. The client decodes one JSON value
// and closes the body unread to its end, so a chunked answer used to cost a
// new connection for every pod.
func TestExtenderKeepsConnections(t *testing.T) {
	const nodes = 500
	cp := testcluster.Start(t)
	infos := make([]fwk.NodeInfo, 0, nodes)
	for i := range nodes {
		n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%04d", i),
			Labels: map[string]string{"topology.kubernetes.io/zone": []string{"a", "b", "c"}[i%3]}}}
		if _, err := cp.Client.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		ni := schedframework.NewNodeInfo()
		ni.SetNode(n)
		infos = append(infos, ni)
	}
	f := informers.NewSharedInformerFactory(cp.Client, 0)
	m, err := extender.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	x, err := extender.New(f, staticStore(t, testRTT, testTraffic), extender.Config{}, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())

	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(x.Handler(extender.HandlerOptions{}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	client, err := scheduler.NewHTTPExtender(&schedapi.Extender{URLPrefix: srv.URL, FilterVerb: "filter",
		PrioritizeVerb: "prioritize", Weight: 100, NodeCacheCapable: true}) //nolint:misspell // the API's verb
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%d", i), Namespace: "default",
			Labels: map[string]string{"delay_c": "35"}}}
		passed, failed, unresolvable, err := client.Filter(pod, infos)
		if err != nil {
			t.Fatalf("filter: %v", err)
		}
		if len(passed)+len(failed)+len(unresolvable) != nodes || len(passed) == 0 || len(unresolvable) == 0 {
			t.Fatalf("filter: %d passed, %d failed, %d unresolvable of %d nodes", len(passed), len(failed), len(unresolvable), nodes)
		}
		scores, _, err := client.Prioritize(pod, passed) //nolint:misspell // the API's verb
		if err != nil {
			t.Fatalf("prioritize: %v", err) //nolint:misspell // the API's verb
		}
		if len(*scores) != len(passed) {
			t.Fatalf("%d scores for %d nodes", len(*scores), len(passed))
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("kube-scheduler's extender client opened %d connections for 100 calls, want 1 (kept alive)", n)
	}
}
