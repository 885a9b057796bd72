package discover

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// gateway serves traefik_entrypoint_requests_total{entrypoint,node}
// counters that grow at known rates, like Traefik's /metrics.
type gateway struct {
	addr string
}

type flow struct {
	node, entrypoint string
	rps              float64
}

// serveGateway starts the metrics endpoint and a goroutine adding to each
// counter rps × elapsed time, until the test ends.
func serveGateway(t *testing.T, flows []flow) *gateway {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "traefik_entrypoint_requests_total", Help: "requests"}, []string{"entrypoint", "node"})
	reg.MustRegister(c)
	for _, f := range flows {
		c.WithLabelValues(f.entrypoint, f.node).Add(0)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		added := make([]float64, len(flows))
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tk.C:
				el := now.Sub(start).Seconds()
				for i, f := range flows {
					want := f.rps * el
					c.WithLabelValues(f.entrypoint, f.node).Add(want - added[i])
					added[i] = want
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = srv.Close()
	})
	return &gateway{addr: ln.Addr().String()}
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// node and pod builders for cluster fixtures.
func mkNode(name, site, ip string) v1.Node {
	n := v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if site != "" {
		n.Labels["topology.kubernetes.io/zone"] = site
	}
	if ip != "" {
		n.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeHostName, Address: name}, {Type: v1.NodeInternalIP, Address: ip}}
	}
	return n
}

func mkGateway(name, node string) v1.Pod {
	return v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "traefik", Labels: map[string]string{"app.kubernetes.io/name": "traefik"}},
		Spec: v1.PodSpec{NodeName: node}, Status: v1.PodStatus{Phase: v1.PodRunning}}
}
