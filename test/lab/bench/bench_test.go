package bench_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/broker"
	"github.com/ning-edge/ning/internal/lab"
	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/topology"
	"github.com/ning-edge/ning/test/lab/bench"
)

// loadgenEnv names the generator's config file: set, the test binary is a
// site's load generator (run in the site's namespace by the harness).
const loadgenEnv = "NING_BENCH_LOADGEN"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(loadgenEnv); cfg != "" {
		os.Exit(loadgen(cfg))
	}
	os.Exit(m.Run())
}

func loadgen(cfgFile string) int {
	data, err := os.ReadFile(cfgFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 1
	}
	var c bench.LoadConfig
	if err := json.Unmarshal(data, &c); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 1
	}
	f, err := os.Create(cfgFile + ".out")
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 1
	}
	if err := bench.Load(context.Background(), c, f); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 1
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 1
	}
	return 0
}

const (
	repoRoot     = "../../.."
	topologyFile = "test/lab/topology.yaml"
	valuesFiles  = "test/lab/values.yaml,test/lab/bench/values.yaml"
	promAddr     = lab.HostIP + ":9090"
	otlpAddr     = lab.HostIP + ":4317"
)

// The workload: 25 ms per request, one at a time: a replica saturates at
// 40 requests/s; ning's model gets 70 % of that (28/s) as a replica's rate
// (three times that in the chart's values: the gateways count all three
// methods' requests). A gateway's connection to a replica lives at most 1 s,
// so kube-proxy picks the endpoints afresh every second.
var workload = bench.Workload{Replicas: 4, ServiceTime: "25ms", Concurrency: 1, MaxConnAge: "1s"}

const perReplicaRPS = 28

type harness struct {
	t        *testing.T
	ningBin  string
	binDir   string
	out      string // raw results and logs
	client   kubernetes.Interface
	spec     *topology.Spec
	plan     *lab.Plan
	nodeSite map[string]string
	siteNode map[string]string
	brokerIP string
}

func skipUnlessLab(t *testing.T) *harness {
	t.Helper()
	if testing.Short() {
		t.Skip("the lab benchmark: skipped in -short (make bench-lab runs it)")
	}
	h := &harness{t: t, ningBin: os.Getenv("NING_BIN"), binDir: os.Getenv("NING_LAB_BIN")}
	req := os.Getenv("NING_REQUIRE_LAB") == "1"
	fail := func(msg string) {
		if req {
			t.Fatal(msg + " (NING_REQUIRE_LAB=1: required)")
		}
		t.Skip(msg)
	}
	if os.Geteuid() != 0 {
		fail("the lab needs root: skipped")
	}
	if h.ningBin == "" || h.binDir == "" {
		fail("NING_BIN and NING_LAB_BIN unset: run make bench-lab or make test-bench-lab")
	}
	for _, tool := range []string{"prometheus", "nsenter", "ctr"} {
		if _, err := exec.LookPath(tool); err != nil {
			fail(tool + " not found (Debian: prometheus, util-linux, containerd)")
		}
	}
	if _, err := os.Stat(filepath.Join(h.binDir, "images", "traefik.tar")); err != nil {
		fail("no Traefik image: run make images")
	}
	return h
}

func (h *harness) ningLab(ctx context.Context, args ...string) string {
	h.t.Helper()
	cmd := exec.CommandContext(ctx, h.ningBin, append([]string{"lab"}, args...)...)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	h.t.Logf("ning lab %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		h.t.Fatalf("ning lab %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// up brings the lab up with the benchmark's values, imports the Traefik
// image, creates the gateways and Services, and starts Prometheus. Everything goes at the test's end.
func (h *harness) up(ctx context.Context) {
	t := h.t
	data, err := os.ReadFile(filepath.Join(repoRoot, topologyFile))
	if err != nil {
		t.Fatal(err)
	}
	if h.spec, err = topology.ParseSpec(data); err != nil {
		t.Fatal(err)
	}
	if h.plan, err = lab.LoadPlan(filepath.Join(repoRoot, topologyFile), "cloud"); err != nil {
		t.Fatal(err)
	}
	h.nodeSite, h.siteNode = map[string]string{}, map[string]string{}
	for _, s := range h.plan.Sites {
		h.nodeSite[s.Node()], h.siteNode[s.Name] = s.Name, s.Node()
	}
	h.ningLab(ctx, "up", "--bin-dir", h.binDir, "--topology", topologyFile, "--values", valuesFiles)
	t.Cleanup(func() { h.ningLab(context.Background(), "down") })
	cfg, err := clientcmd.BuildConfigFromFlags("", lab.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if h.client, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(h.plan.Sites))
	for i, s := range h.plan.Sites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := exec.CommandContext(ctx, "ctr", "-a", s.Run()+"/containerd.sock", "-n", "k8s.io", "images", "import",
				filepath.Join(h.binDir, "images", "traefik.tar")).CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("site %s: importing traefik.tar: %v: %s", s.Name, err, out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := bench.Gateways(ctx, h.client, otlpAddr); err != nil {
		t.Fatal(err)
	}
	if err := bench.Services(ctx, h.client, workload.Replicas); err != nil {
		t.Fatal(err)
	}
	h.waitFor(ctx, "a Ready Traefik on every node", 3*time.Minute, func() error {
		pods, err := h.client.CoreV1().Pods(bench.GatewayNamespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		n := 0
		for _, p := range pods.Items {
			if ready(&p) {
				n++
			}
		}
		if n < len(h.plan.Sites) {
			return fmt.Errorf("%d of %d Ready", n, len(h.plan.Sites))
		}
		return nil
	})
	t.Cleanup(h.saveGatewayLogs)
	h.startPrometheus(ctx)
	pods, err := h.client.CoreV1().Pods(lab.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=broker"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("no broker pod: %v", err)
	}
	h.brokerIP = pods.Items[0].Status.PodIP
}

// saveGatewayLogs keeps every Traefik pod's log beside the raw results
// (gateway-<node>.log): the OTLP exporter's failures are only there.
func (h *harness) saveGatewayLogs() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pods, err := h.client.CoreV1().Pods(bench.GatewayNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		h.t.Logf("listing the gateways for their logs: %v", err)
		return
	}
	for _, p := range pods.Items {
		data, err := h.client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &v1.PodLogOptions{}).Do(ctx).Raw()
		if err != nil {
			h.t.Logf("the log of gateway %s on %s: %v", p.Name, p.Spec.NodeName, err)
			continue
		}
		if err := os.WriteFile(filepath.Join(h.out, "gateway-"+p.Spec.NodeName+".log"), data, 0o644); err != nil {
			h.t.Log(err)
		}
	}
}

func ready(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady && c.Status == v1.ConditionTrue {
			return true
		}
	}
	return false
}

func (h *harness) waitFor(ctx context.Context, what string, timeout time.Duration, f func() error) {
	h.t.Helper()
	t0 := time.Now()
	var err error
	for time.Since(t0) < timeout {
		if err = f(); err == nil {
			h.t.Logf("%s after %s", what, time.Since(t0).Round(100*time.Millisecond))
			return
		}
		select {
		case <-ctx.Done():
			h.t.Fatalf("%s: %v", what, ctx.Err())
		case <-time.After(time.Second):
		}
	}
	h.t.Fatalf("%s: not within %s: %v", what, timeout, err)
}

// startPrometheus runs the Debian package's Prometheus on the host's
// bridge address, scraping every Traefik pod, with the pod's node as the
// label `node`. Debian builds Prometheus without kubernetes_sd_configs, so
// the harness lists the Traefik pods and writes them as file_sd targets.
func (h *harness) startPrometheus(ctx context.Context) {
	dir := filepath.Join(h.out, "prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	pods, err := h.client.CoreV1().Pods(bench.GatewayNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=traefik"})
	if err != nil {
		h.t.Fatal(err)
	}
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	var groups []group
	for _, p := range pods.Items {
		groups = append(groups, group{Targets: []string{fmt.Sprintf("%s:%d", p.Status.PodIP, bench.MetricsPort)},
			Labels: map[string]string{"node": p.Spec.NodeName, "pod": p.Name, "namespace": p.Namespace}})
	}
	targets, _ := json.Marshal(groups)
	if err := os.WriteFile(filepath.Join(dir, "traefik.json"), targets, 0o644); err != nil {
		h.t.Fatal(err)
	}
	conf := fmt.Sprintf(`global: {scrape_interval: 5s, evaluation_interval: 5s}
scrape_configs:
  - job_name: traefik
    file_sd_configs:
      - files: [%s]
`, filepath.Join(dir, "traefik.json"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o644); err != nil {
		h.t.Fatal(err)
	}
	h.t.Logf("prometheus scrapes %s", targets)
	h.background(ctx, "prometheus.log", "nice", "-n", "5", "prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr, "--log.level=warn")
}

// startOTLPTrial runs `ning discover --source otlp --once --dry-run` on the
// host, receiving the gateways' OTLP pushes; its decision lands in
// otlp-decision.json. It takes pushes without a token (--otlp-insecure):
// it listens on the lab bridge's host address, which only the lab's
// namespaces reach.
func (h *harness) startOTLPTrial(ctx context.Context) {
	h.background(ctx, "otlp-decision.json", h.ningBin, "discover", "--source", "otlp", "--otlp-listen", otlpAddr, "--otlp-insecure",
		"--once", "--dry-run", "--wait", "150s", "-o", "json", "--kubeconfig", lab.Kubeconfig, "--gateway-namespace", bench.GatewayNamespace)
}

// background starts a process the harness owns, output to out/<name>, and
// stops it (by its own pid) at the test's end.
func (h *harness) background(ctx context.Context, name string, args ...string) {
	f, err := os.Create(filepath.Join(h.out, name))
	if err != nil {
		h.t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		h.t.Fatalf("%s: %v", args[0], err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = f.Close(); close(done) }()
	h.t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
}

// waitTraffic waits for a TrafficReport from the discovery pod (read from
// the gateways through Prometheus) and returns it.
func (h *harness) waitTraffic(ctx context.Context, timeout time.Duration) *ningv1.TrafficReport {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	got := make(chan *ningv1.TrafficReport, 16)
	// As the chart's scheduler account, with a token for the broker's
	// audience (mqtt.auth=token), as the chart's pods connect.
	tr, err := h.client.CoreV1().ServiceAccounts("ning").CreateToken(ctx, "ning-scheduler", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"ning-broker"}, ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		h.t.Fatalf("a broker token: %v", err)
	}
	sub, err := mqtt.NewSubscriber(ctx, mqtt.Config{BrokerURL: "mqtt://" + h.brokerIP + ":1883", ClientID: fmt.Sprintf("bench-%d", time.Now().UnixNano()),
		Username: broker.TokenUsername, Password: tr.Status.Token}, mqtt.SubscriberOptions{Topics: []string{mqtt.TopicTraffic}},
		func(_ string, payload []byte) {
			var r ningv1.TrafficReport
			if proto.Unmarshal(payload, &r) == nil && len(r.Sites) > 0 {
				select {
				case got <- &r:
				default:
				}
			}
		}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = sub.Close(context.Background()) }()
	for {
		select {
		case r := <-got:
			total := 0.0
			for _, s := range r.Sites {
				total += s.RequestsPerSecond
			}
			if total > 0 {
				return r
			}
		case <-ctx.Done():
			h.t.Fatalf("no TrafficReport with traffic from discovery within %s", timeout)
		}
	}
}

// load runs the scenario from every site with traffic at once, each site's
// generator in that site's namespace, and the scenario's events on time.
func (h *harness) load(ctx context.Context, sc *bench.Scenario, routing, tag string) []bench.Result {
	t := h.t
	start := time.Now().Add(2 * time.Second)
	var targets, hosts []string
	for _, m := range bench.Methods {
		targets = append(targets, m)
		hosts = append(hosts, bench.Host(m, routing))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var all []bench.Result
	for i, site := range sc.Sites() {
		s, err := h.plan.Site(site)
		if err != nil {
			t.Fatal(err)
		}
		c := bench.LoadConfig{Scenario: sc, Site: site, URL: fmt.Sprintf("http://%s:%d/", s.NodeIP(), bench.WebPort),
			Targets: targets, Hosts: hosts, Seed: uint64(1000*len(tag) + i), Timeout: 5 * time.Second, Start: start}
		data, _ := json.Marshal(c)
		file := filepath.Join(h.out, fmt.Sprintf("load-%s-%s.json", tag, site))
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(ctx, "nsenter", "--net=/var/run/netns/"+s.Netns(), "--", os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), loadgenEnv+"="+file)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("load generator at %s: %v: %s", site, err, out)
				return
			}
			rs, err := bench.ReadResults(file + ".out")
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			all = append(all, rs...)
			mu.Unlock()
		}()
	}
	for _, e := range sc.Events {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(start.Add(e.At.Duration)))
			h.ningLab(ctx, "site", e.Action, e.Site)
		}()
	}
	wg.Wait()
	return all
}
