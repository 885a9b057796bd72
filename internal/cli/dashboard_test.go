package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ning-edge/ning/internal/dashboard"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/testcluster"
)

// statusFixture is a control plane with sites a and b, one ning pod bound in
// b as TrafficLatency's Bind binds (its placement note on the Binding, which
// the apiserver copies to the pod), and a topology file with the RTT and
// traffic.
func statusFixture(t *testing.T) (cp *testcluster.ControlPlane, topo string) {
	t.Helper()
	ctx := t.Context()
	cp = testcluster.Start(t)
	for _, n := range []testcluster.Node{{Name: "a-0", Site: "a"}, {Name: "b-0", Site: "b"}} {
		if _, err := testcluster.CreateReadyNode(ctx, cp.Client, n); err != nil {
			t.Fatal(err)
		}
	}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "default"},
		Spec: v1.PodSpec{SchedulerName: dashboard.DefaultSchedulerName,
			Containers: []v1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
	}
	if _, err := cp.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "default",
			Annotations: map[string]string{policy.AnnotationPlacement: "Placed in site b (node b-0)"}},
		Target: v1.ObjectReference{Kind: "Node", Name: "b-0"},
	}
	if err := cp.Client.CoreV1().Pods("default").Bind(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	topo = filepath.Join(t.TempDir(), "topology.yaml")
	spec := "sites:\n  - {name: a, traffic: 90}\n  - {name: b, traffic: 10}\nlatencyMs:\n  a: {b: 12}\n"
	if err := os.WriteFile(topo, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	return cp, topo
}

// TestStatusAndDashboard runs `ning status` (table, JSON, one workload) and
// `ning dashboard` against a real apiserver.
func TestStatusAndDashboard(t *testing.T) {
	cp, topo := statusFixture(t)
	base := []string{"status", "--kubeconfig", cp.Kubeconfig, "--latency-file", topo, "--log-level", "warn"}

	out, err := runCLI(t, base...)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	checkContains(t, "status", out,
		"SITE  NODES  RTT FROM a  TRAFFIC     default/web-0",
		"a     1/1    0.00 ms     90.0 req/s  0",
		"b     1/1    12.00 ms    10.0 req/s  1",
		// a's 90 req/s go 12 ms to b: 90*12/100.
		"default/web-0  Pod   1         0        10.80 ms",
		"last decision for default/web-0: ",
		"NingPlacement default/web-0: Placed in site b (node b-0)")

	out, err = runCLI(t, append(base, "-o", "json", "--workload", "default/web-0")...)
	if err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	var s dashboard.Snapshot
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if !s.Synced || len(s.Sites) != 2 || len(s.Workloads) != 1 || s.Workloads[0].Replicas["b"] != 1 || len(s.Decisions) != 1 {
		t.Errorf("status -o json: %+v", s)
	}

	if _, err := runCLI(t, append(base, "--workload", "default/api")...); err == nil ||
		!strings.Contains(err.Error(), "workload default/api not found; known: default/web-0") {
		t.Errorf("status --workload default/api: %v", err)
	}

	// A pod within 20 ms of a, for the explain page's constraints.
	cam := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "cam", Namespace: "default", Labels: map[string]string{"delay_a": "20"}},
		Spec: v1.PodSpec{SchedulerName: dashboard.DefaultSchedulerName, NodeName: "a-0",
			Containers: []v1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
	}
	if _, err := cp.Client.CoreV1().Pods("default").Create(t.Context(), cam, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The dashboard serves the page, /api/snapshot, /healthz and /metrics.
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := startCLI(ctx, "dashboard", "--kubeconfig", cp.Kubeconfig, "--latency-file", topo, "--listen", addr, "--log-level", "warn", "--unknown-rtt", "FailOpen",
		"--measured", labReport, "--measured-routing", "preferClose", "--measured-scenario", "steady")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, err := get(ctx, "http://"+addr+"/healthz"); err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the dashboard's /healthz is not ok after 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	page := fetch(t, "http://"+addr+"/")
	for _, want := range []string{`<table id="heatmap"`, `data-site="a"`, `data-site="b"`, `title="a → b: 12.00 ms"`, "NingPlacement"} {
		if !strings.Contains(page, want) {
			t.Errorf("the dashboard page lacks %q", want)
		}
	}
	// The lab's measured response times, from the repository's own report.
	measured := regexp.MustCompile(`(?s)<section id="measured">.*?</section>`).FindString(page)
	checkContains(t, "the measured section", measured,
		"routing <strong>preferClose</strong>, scenario <strong>steady</strong>",
		`<tr class="measured" data-row="ning"><td>ning</td><td class="num">`+labP50(t, "preferClose", "steady", "ning")+` ms</td>`,
		`data-row="default kube-scheduler"`, `data-row="exact optimum"`)
	// The workload links to its explain page, which ning explain's table
	// fills from the dashboard's own store and the flags' profile.
	if !strings.Contains(page, `href="explain/pod/default/cam"`) {
		t.Errorf("the dashboard page does not link cam to its explain page")
	}
	checkContains(t, "the explain page", fetch(t, "http://"+addr+"/explain/pod/default/cam"),
		"pod default/cam: on node a-0 in site a",
		"delay constraints (unknown RTTs FailOpen): delay_a: at most 20 ms from a")
	if body := fetch(t, "http://"+addr+"/api/snapshot"); !strings.Contains(body, `"busiest": "a"`) {
		t.Errorf("/api/snapshot: %.500s", body)
	}
	if body := fetch(t, "http://"+addr+"/metrics"); !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics: %.300s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("dashboard after cancel: %v", err)
	}
}

// labReport is the lab benchmark's report in the repository.
const labReport = "../../bench/lab.json"

// labP50 is a method's p50 in labReport, as the page prints it.
func labP50(t *testing.T, routing, scenario, method string) string {
	t.Helper()
	data, err := os.ReadFile(labReport)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Routing map[string]map[string]map[string]struct {
			P50Ms float64 `json:"p50Ms"`
		} `json:"routing"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	m, ok := r.Routing[routing][scenario][method]
	if !ok {
		t.Fatalf("%s has no %s/%s/%s", labReport, routing, scenario, method)
	}
	return strconv.FormatFloat(m.P50Ms, 'f', 2, 64)
}

// TestStatusFlagErrors: bad flags fail with a message naming the flag.
func TestStatusFlagErrors(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	// A valid file for a server that is not there: loading it succeeds.
	cfg := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n" +
		"users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "-o", "yaml"}, `-o "yaml": want table or json`},
		{[]string{"status", "--timeout", "0s"}, "--timeout 0s"},
		{[]string{"status", "--mqtt-wait", "-1s"}, "--mqtt-wait -1s"},
		{[]string{"status", "--kubeconfig", filepath.Join(t.TempDir(), "missing")}, "--kubeconfig"},
		{[]string{"status", "--kubeconfig", kubeconfig, "--ewma-alpha", "2"}, "--ewma-alpha 2"},
		{[]string{"status", "--kubeconfig", kubeconfig, "--latency-file", filepath.Join(t.TempDir(), "none.yaml")}, "--latency-file"},
		{[]string{"status", "--kubeconfig", kubeconfig, "--log-level", "loud"}, "--log-level"},
		{[]string{"status", "--kubeconfig", kubeconfig, "--timeout", "300ms"}, "not listed within --timeout 300ms"},
		{[]string{"dashboard", "--kubeconfig", kubeconfig, "--history", "-1"}, "history -1"},
		{[]string{"status", "--kubeconfig", kubeconfig, "--per-replica-rps", "NaN"}, "per-replica rate NaN"},
		{[]string{"dashboard", "--kubeconfig", kubeconfig, "--listen", "256.0.0.1:80"}, "--listen"},
		{[]string{"dashboard", "--kubeconfig", kubeconfig, "--measured", filepath.Join(t.TempDir(), "none.json")}, "--measured: reading the lab report"},
		{[]string{"dashboard", "--kubeconfig", kubeconfig, "--measured", labReport, "--measured-routing", "fast"}, `no routing "fast"; it has plain, preferClose`},
		{[]string{"dashboard", "--kubeconfig", kubeconfig, "--measured", labReport, "--measured-scenario", "storm"}, `routing plain has no scenario "storm"; it has nodeloss, shift, steady`},
		{[]string{"dashboard", "--kubeconfig", kubeconfig, "--measured", kubeconfig}, "not bench/lab.json"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := runCLI(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
