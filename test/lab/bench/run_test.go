package bench_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ning-edge/ning/internal/cli"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/topology"
	"github.com/ning-edge/ning/test/lab/bench"
)

// TestBenchLab is make bench-lab: every scenario under both routings, in
// one lab, written to $NING_BENCH_REPORT (bench/lab.md, bench/lab.json).
func TestBenchLab(t *testing.T) {
	h := skipUnlessLab(t)
	dir := os.Getenv("NING_BENCH_REPORT")
	if dir == "" {
		t.Skip("NING_BENCH_REPORT unset: run make bench-lab")
	}
	rep := h.session(t.Context(), []string{"steady", "nodeloss", "shift"})
	if err := rep.Write(dir); err != nil {
		t.Fatal(err)
	}
	h.prependHeader(t, filepath.Join(dir, "lab.md"), rep)
	t.Logf("wrote %s/lab.md and lab.json", dir)
}

// TestBenchLabSteady is CI's check (make test-bench-lab): a 60 s steady
// scenario under both routings; ning's p95, with the better routing, must
// be below the default scheduler's with its better routing.
func TestBenchLabSteady(t *testing.T) {
	h := skipUnlessLab(t)
	rep := h.session(t.Context(), []string{"ci-steady"})
	rn, n := rep.Best("steady", "ning")
	rd, d := rep.Best("steady", "default")
	if n == nil || d == nil {
		t.Fatalf("no measurements: ning %v, default %v", n, d)
	}
	t.Logf("steady: ning p95 %.1f ms (%s), default %.1f ms (%s): %.1f %% lower", n.P95Ms, rn, d.P95Ms, rd, 100*(1-n.P95Ms/d.P95Ms))
	if n.P95Ms >= d.P95Ms {
		t.Errorf("ning's p95 %.1f ms (%s routing) is not below the default scheduler's %.1f ms (%s)", n.P95Ms, rn, d.P95Ms, rd)
	}
	if n.Errors > 0 {
		t.Errorf("%d of ning's %d requests failed in a steady scenario", n.Errors, n.Requests)
	}
}

func (h *harness) session(ctx context.Context, names []string) *bench.Report {
	t := h.t
	var err error
	if h.out, err = os.MkdirTemp("", "ning-bench-lab-"); err != nil {
		t.Fatal(err)
	}
	t.Logf("raw results and logs in %s", h.out)
	h.up(ctx)
	sites := h.spec.SiteNames()
	var scenarios []*bench.Scenario
	for _, n := range names {
		sc, err := bench.LoadScenario(filepath.Join("scenarios", n+".yaml"), sites)
		if err != nil {
			t.Fatal(err)
		}
		scenarios = append(scenarios, sc)
	}
	first := scenarios[0].Phases[0].Rates
	opt := h.optimum(first)
	t.Logf("the exact optimum for %v: %v", first, opt)
	for _, err := range []error{bench.DeployDefault(ctx, h.client, workload), bench.DeployOptimal(ctx, h.client, workload, opt)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Warm up: traffic through the gateways, so that Prometheus has a
	// rate and discovery publishes it; ning's pods are created once it has.
	warm := &bench.Scenario{Name: "warmup", Duration: metav1.Duration{Duration: 100 * time.Second}, Phases: scenarios[0].Phases[:1]}
	warmed := make(chan struct{})
	go func() { defer close(warmed); h.load(ctx, warm, "plain", "warmup") }()
	h.startOTLPTrial(ctx)
	tr := h.waitTraffic(ctx, 3*time.Minute)
	discovery, _ := protojson.Marshal(tr)
	t.Logf("discovery published from Prometheus: %s", discovery)
	if err := bench.DeployNing(ctx, h.client, workload); err != nil {
		t.Fatal(err)
	}
	h.waitWorkloads(ctx)
	<-warmed
	var runs []*bench.Run
	var last map[string]float64
	start := h.pods(ctx)["ning"]
	t.Logf("ning's first placement: %v", start)
	for _, sc := range scenarios {
		for _, routing := range bench.Routings {
			if now := h.pods(ctx)["ning"]; last != nil && (!maps.Equal(last, sc.Phases[0].Rates) || !maps.Equal(now, start)) {
				t.Logf("before %s, %s routing: ning's pods %v, traffic %v; placing ning anew for %v", sc.Name, routing, now, last, sc.Phases[0].Rates)
				h.reset(ctx, sc, routing)
			}
			before := h.pods(ctx)
			t.Logf("%s, %s routing: pods %v", sc.Name, routing, before)
			rs := h.load(ctx, sc, routing, sc.Name+"-"+routing)
			after := h.pods(ctx)
			for _, e := range sc.Events {
				if e.Action == "stop" {
					h.ningLab(ctx, "site", "start", e.Site)
				}
			}
			if len(sc.Events) > 0 {
				h.waitWorkloads(ctx)
			}
			runs = append(runs, &bench.Run{Routing: routing, Scenario: sc, Results: rs, Before: before, After: after, Model: h.model(before, first)})
			last = sc.Phases[len(sc.Phases)-1].Rates
		}
	}
	rep := bench.NewReport(topologyFile, fmt.Sprintf("%d replicas, %s per request, concurrency %d (one replica saturates at %.0f requests/s); ning's per-replica rate %d/s; a gateway's connection to a replica closed after its first answer past %s",
		workload.Replicas, workload.ServiceTime, workload.Concurrency, float64(workload.Concurrency)/mustDuration(workload.ServiceTime).Seconds(), perReplicaRPS, workload.MaxConnAge), runs, h.siteNode)
	rep.Discovery = discovery
	total := 0.0
	for _, r := range first {
		total += r
	}
	f := &bench.Floor{RequestsPerSecond: total}
	f.P50Ms, f.P95Ms = bench.QueueFloor(total, workload.Replicas, mustDuration(workload.ServiceTime), workload.Concurrency)
	rep.QueueFloor = f
	if data, err := os.ReadFile(filepath.Join(h.out, "otlp-decision.json")); err == nil {
		t.Logf("ning discover --source otlp:\n%s", data)
		if json.Valid(lastJSON(data)) {
			rep.OTLP = lastJSON(data)
		} else {
			rep.OTLP, _ = json.Marshal(tail(string(data), 3))
		}
	}
	return rep
}

// reset gives ning a fresh start for sc's first phase, as every run's
// must be (a run must not begin from the placement the last one's events
// left): load at the phase's rates until discovery's rate window (the seed
// query's 1 minute) holds nothing else, then ning's Deployment scaled to
// none and back, so that its scheduler places every replica anew, under the
// same load. The other methods' pods do not move.
func (h *harness) reset(ctx context.Context, sc *bench.Scenario, routing string) {
	const window = 75 * time.Second // the rate window, a scrape and a discovery interval
	load := &bench.Scenario{Name: "reset", Duration: metav1.Duration{Duration: window + 45*time.Second}, Phases: sc.Phases[:1]}
	done := make(chan struct{})
	go func() { defer close(done); h.load(ctx, load, routing, "reset-"+sc.Name+"-"+routing) }()
	select {
	case <-time.After(window):
	case <-ctx.Done():
		h.t.Fatal(ctx.Err())
	}
	for _, n := range []int32{0, int32(workload.Replicas)} {
		if err := bench.ScaleNing(ctx, h.client, n); err != nil {
			h.t.Fatal(err)
		}
		// Terminating pods count too: the scheduler would count them.
		h.waitFor(ctx, fmt.Sprintf("ning's Deployment at %d pods", n), 2*time.Minute, func() error {
			pods, err := h.client.CoreV1().Pods(bench.BenchNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + bench.App("ning")})
			if err == nil && len(pods.Items) != int(n) {
				err = fmt.Errorf("%d pods", len(pods.Items))
			}
			return err
		})
	}
	h.waitWorkloads(ctx)
	h.t.Logf("ning placed anew: %v", h.pods(ctx)["ning"])
	<-done
}

func mustDuration(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

// tail is the last n lines of out, after a line counting those left out.
func tail(out string, n int) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) <= n {
		return strings.Join(lines, "\n")
	}
	return fmt.Sprintf("(%d lines before these)\n%s", len(lines)-n, strings.Join(lines[len(lines)-n:], "\n"))
}

// lastJSON is the last line of out that starts a JSON object.
func lastJSON(out []byte) []byte {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "{") {
			return []byte(strings.Join(lines[i:], "\n"))
		}
	}
	return nil
}

func (h *harness) problem(traffic map[string]float64) *placement.Problem {
	spec := *h.spec
	spec.Sites = append([]topology.SiteSpec(nil), h.spec.Sites...)
	for i := range spec.Sites {
		spec.Sites[i].Traffic = traffic[spec.Sites[i].Name]
	}
	return placement.FromSpec(&spec, workload.Replicas, perReplicaRPS)
}

// optimum is `ning place`'s exact plan for the traffic.
func (h *harness) optimum(traffic map[string]float64) map[string]int {
	res, err := cli.Place(h.t.Context(), h.problem(traffic))
	if err != nil {
		h.t.Fatal(err)
	}
	if res.Optimal == nil {
		h.t.Fatalf("ning place found no exact optimum: %s", res.OptimalNote)
	}
	return res.Optimal.Placement
}

// model is ning's modelled weighted RTT of each method's placement.
func (h *harness) model(pods map[string]map[string]int, traffic map[string]float64) map[string]float64 {
	p := h.problem(traffic)
	out := map[string]float64{}
	for m, per := range pods {
		x := make(placement.Placement, len(p.Sites))
		for i, s := range p.Sites {
			x[i] = per[s]
		}
		out[m] = p.Cost(x)
	}
	return out
}

func (h *harness) pods(ctx context.Context) map[string]map[string]int {
	ready, _, err := bench.PodsPerSite(ctx, h.client, h.nodeSite)
	if err != nil {
		h.t.Fatal(err)
	}
	return ready
}

// waitWorkloads waits until every method has all its replicas Ready.
func (h *harness) waitWorkloads(ctx context.Context) {
	h.waitFor(ctx, "every method's pods Ready", 4*time.Minute, func() error {
		ready, total, err := bench.PodsPerSite(ctx, h.client, h.nodeSite)
		if err != nil {
			return err
		}
		for _, m := range bench.Methods {
			n := 0
			for _, v := range ready[m] {
				n += v
			}
			if n < workload.Replicas || total[m] != workload.Replicas {
				return fmt.Errorf("%s: %d Ready of %d pods (want %d): %v", m, n, total[m], workload.Replicas, ready)
			}
		}
		return nil
	})
}

// prependHeader puts what was run, on what, and how, above the tables.
func (h *harness) prependHeader(t *testing.T, file string, rep *bench.Report) {
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	var b strings.Builder
	fmt.Fprintf(&b, `# ning on real requests: the lab benchmark

Written by `+"`make bench-lab`"+` (test/lab/bench, TestBenchLab) in one run on %s, %d cores
shared with other work (load average at the end: %s). docs/lab.md explains the setup and reads the results.

- Topology: %s (four sites of examples/edge-city.yaml, one node each; WAN delays by ning's NFQUEUE delayer).
- Gateways: Traefik v3.6.12 on every node (host network, Kubernetes Ingress provider, native load balancing: Traefik sends
  to the Service's cluster IP, kube-proxy picks the endpoint).
- Users: an open-loop generator in every site's network namespace sends to its own site's gateway (Poisson arrivals
  on a fixed, precomputed schedule; each response time from the scheduled send time; 5 s timeout). ning, default and
  optimal each get the scenario's rates at the same time.
- Workload: %s.
- Traffic data: Prometheus (Debian's 2.42) scrapes the gateways; ning's discovery pod reads it with the seed's query
  and publishes TrafficReports, which ning's scheduler and rescheduler use.
- Methods: ning (schedulerName ning-scheduler, the rescheduler on); default (kube-scheduler's default profile, its
  built-in PodTopologySpread); optimal (`+"`ning place`"+`'s exact plan for the first phase, pinned by node affinity).
- Routings: plain (a Service: kube-proxy picks any endpoint) and preferClose (`+"`trafficDistribution: PreferClose`"+`).
- "model weighted RTT" is ning's cost model for the placement at the start and the first phase's traffic; "served
  locally" is the share of answered requests served by a pod at the site they entered.

`, time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), strings.TrimSpace(string(load)), rep.Topology, rep.Workload)
	if len(rep.Discovery) > 0 {
		fmt.Fprintf(&b, "The first TrafficReport discovery published from Prometheus:\n\n```\n%s\n```\n\n", rep.Discovery)
	}
	if len(rep.OTLP) > 0 {
		text := string(rep.OTLP)
		var log string
		if json.Unmarshal(rep.OTLP, &log) == nil {
			text = log // the receiver's log, not its decision
		}
		fmt.Fprintf(&b, "OTLP trial (Traefik pushing OTLP/gRPC to `ning discover --source otlp --once --dry-run` on the host):\n\n```\n%s\n```\n\n", text)
	}
	if err := os.WriteFile(file, []byte(b.String()+string(body)), 0o644); err != nil {
		t.Fatal(err)
	}
}
