package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ning-edge/ning/internal/discover/promtest"
	"github.com/ning-edge/ning/internal/httpserve/hostiletest"
	"github.com/ning-edge/ning/internal/testcluster"
)

// discoverFixture: a real Prometheus scraping per-node counters (site
// dallas 60 req/s over two nodes, toronto 25, austin 5) and a real apiserver
// with those nodes and a Traefik pod on each site.
func discoverFixture(t *testing.T) (promURL string, cp *testcluster.ControlPlane) {
	t.Helper()
	gw := promtest.ServeGateway(t, []promtest.Flow{
		{Node: "dallas-1", Entrypoint: "web", RPS: 40}, {Node: "dallas-2", Entrypoint: "web", RPS: 20},
		{Node: "toronto-1", Entrypoint: "web", RPS: 25}, {Node: "austin-1", Entrypoint: "web", RPS: 5},
		{Node: "toronto-1", Entrypoint: "websecure", RPS: 500},
	})
	prom := promtest.Start(t, gw)
	ctx := context.Background()
	cp = testcluster.Start(t)
	for i, n := range []struct{ name, site string }{{"dallas-1", "dallas"}, {"dallas-2", "dallas"}, {"toronto-1", "toronto"}, {"austin-1", "austin"}} {
		node, err := testcluster.CreateReadyNode(ctx, cp.Client, testcluster.Node{Name: n.name, Site: n.site})
		if err != nil {
			t.Fatal(err)
		}
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0." + string(rune('0'+i)) + ".1"}}
		if _, err := cp.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "traefik-" + n.name, Namespace: "default", Labels: map[string]string{"app.kubernetes.io/name": "traefik"}},
			Spec: corev1.PodSpec{NodeName: n.name, Containers: []corev1.Container{{Name: "traefik", Image: "traefik:v3"}}}}
		if n.name != "dallas-2" {
			if _, err := cp.Client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return prom.URL, cp
}

const discoverTestQuery = `sum by (node) (rate(traefik_entrypoint_requests_total{entrypoint="web"}[5s]))`

// TestDiscoverDryRunJSON runs `ning discover --once --dry-run -o json`
// against a real Prometheus and apiserver: the JSON has the per-site rates,
// the busiest site and the Job it would create, and nothing is created.
func TestDiscoverDryRunJSON(t *testing.T) {
	promURL, cp := discoverFixture(t)
	out, err := runCLI(t, "discover", "--once", "--dry-run", "-o", "json", "--wait", "45s",
		"--kubeconfig", cp.Kubeconfig, "--prometheus-url", promURL, "--query", discoverTestQuery,
		"--namespace", "default", "--image", "ghcr.io/ning-edge/ning:test", "--broker", "mqtt://ning-broker.ning:1883", "--log-level", "warn")
	if err != nil {
		t.Fatalf("discover: %v\n%s", err, out)
	}
	t.Logf("ning discover --once --dry-run -o json:\n%s", out)
	var got struct {
		Sites     map[string]float64 `json:"sites"`
		Busiest   string             `json:"busiest"`
		WarmingUp bool               `json:"warmingUp"`
		Job       *struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
			Spec     struct {
				Template corev1.PodTemplateSpec `json:"template"`
			} `json:"spec"`
		} `json:"job"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	want := map[string]float64{"dallas": 60, "toronto": 25, "austin": 5}
	for site, w := range want {
		if math.Abs(got.Sites[site]-w) > 0.1*w {
			t.Errorf("site %s: %.2f req/s, want %.0f ±10%%", site, got.Sites[site], w)
		}
	}
	if got.Busiest != "dallas" || got.WarmingUp || got.Job == nil {
		t.Fatalf("busiest %q warming %v job %v", got.Busiest, got.WarmingUp, got.Job != nil)
	}
	args := strings.Join(got.Job.Spec.Template.Spec.Containers[0].Args, " ")
	if !strings.Contains(args, "--site dallas") || !strings.Contains(args, "--target austin/austin-1=10.0.3.1") || !strings.Contains(args, "--target toronto/toronto-1=10.0.2.1") {
		t.Errorf("job args %q", args)
	}
	jobs, err := cp.Client.BatchV1().Jobs("").List(context.Background(), metav1.ListOptions{})
	if err != nil || len(jobs.Items) != 0 {
		t.Errorf("dry run created %d jobs (%v)", len(jobs.Items), err)
	}

	// Continuous mode serves /healthz and /metrics.
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := startCLI(ctx, "discover", "--dry-run", "--interval", "500ms", "--listen", addr,
		"--kubeconfig", cp.Kubeconfig, "--prometheus-url", promURL, "--query", discoverTestQuery, "--log-level", "warn")
	deadline := time.Now().Add(20 * time.Second)
	for {
		body := fetch(t, "http://"+addr+"/metrics")
		if strings.Contains(body, `ning_discover_busiest_site{site="dallas"} 1`) && strings.Contains(body, "ning_discover_decisions_total") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no decision in /metrics after 20s:\n%s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, err := get(ctx, "http://"+addr+"/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz: %d %v", code, err)
	}
	// Hostile clients against the endpoints as the command serves them
	// (default timeouts: 5 s for headers, 10 s for a request).
	hostiletest.Run(t, hostiletest.Target{
		Addr: addr, OK: hostiletest.Request{Method: "GET", Path: "/healthz"},
		WrongMethods: []hostiletest.Request{{Method: "POST", Path: "/healthz", Body: "{}"}, {Method: "DELETE", Path: "/metrics"}},
		Cut:          defaultCut,
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("continuous discover: %v", err)
	}
}

func fetch(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = io.Copy(&b, resp.Body)
	return b.String()
}

// TestDiscoverFlagErrors: bad flags fail before anything runs.
func TestDiscoverFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", "yaml"}, "--output"},
		{[]string{"--source", "kafka"}, "--source"},
		{[]string{"--query", "sum by (node) (x)"}, "no range selector"},
		{[]string{"--source", "otlp", "--otlp-match", "novalue"}, "--otlp-match"},
		{[]string{"--interval", "0s"}, "--interval"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := runCLI(t, append([]string{"discover", "--kubeconfig", "/dev/null", "--dry-run"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
