// Package lab_test is the lab suite (make test-lab, root): it brings the lab
// up with `ning lab up` exactly as a person would, checks ning installed from
// its Helm chart on real kubelets, containerd, kube-proxy and CoreDNS, drives
// faults with `ning lab`, and tears it all down with `ning lab down`.
package lab_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/broker"
	"github.com/ning-edge/ning/internal/cli"
	"github.com/ning-edge/ning/internal/lab"
	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/rescheduler"
	"github.com/ning-edge/ning/internal/topology"
)

// RequireEnv set to 1 (CI sets it) turns the suite's skip into a failure.
const RequireEnv = "NING_REQUIRE_LAB"

const topologyFile = "topology.yaml"

type env struct {
	ningBin  string
	client   kubernetes.Interface
	spec     *topology.Spec
	siteOf   map[string]string // node -> site
	brokerIP string
}

func skip(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf(format+" ("+RequireEnv+"=1: required)", args...)
	}
	t.Skipf(format, args...)
}

// ningLab runs `ning lab ARGS` from the repository root and returns its output.
func (e *env) ningLab(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, e.ningBin, append([]string{"lab"}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	t.Logf("ning lab %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("ning lab %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

func TestLab(t *testing.T) {
	if testing.Short() {
		t.Skip("the lab suite: skipped in -short (make test-lab runs it)")
	}
	if os.Geteuid() != 0 {
		skip(t, "the lab needs root: skipped")
	}
	e := &env{ningBin: os.Getenv("NING_BIN")}
	binDir := os.Getenv("NING_LAB_BIN")
	if e.ningBin == "" || binDir == "" {
		skip(t, "NING_BIN and NING_LAB_BIN unset: run make test-lab")
	}
	data, err := os.ReadFile(topologyFile)
	if err != nil {
		t.Fatal(err)
	}
	if e.spec, err = topology.ParseSpec(data); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	upArgs := []string{"up", "--bin-dir", binDir, "--topology", "test/lab/" + topologyFile}
	if left := lab.Leftovers(ctx); len(left) > 0 {
		t.Logf("an earlier lab left %d things; ning lab up removes them first:\n%s", len(left), strings.Join(left, "\n"))
	}
	t.Run("Ctrl-C during the bring-up removes everything", func(t *testing.T) { e.testInterrupt(t, upArgs) })
	killed := map[int]string{}
	t.Run("kill -9 of the daemon leaves what the next lab-up removes", func(t *testing.T) { killed = e.testKill9(t, upArgs) })
	t0 := time.Now()
	out := e.ningLab(ctx, t, upArgs...)
	t.Logf("bring-up took %s", time.Since(t0).Round(100*time.Millisecond))
	for pid, cmdline := range killed {
		if now, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && string(now) == cmdline {
			t.Errorf("process %d of the killed lab (%s) survived the next ning lab up", pid, strings.ReplaceAll(cmdline, "\x00", " "))
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if last := lines[len(lines)-1]; last != "KUBECONFIG="+lab.Kubeconfig {
		t.Fatalf("last line of ning lab up %q, want KUBECONFIG=%s", last, lab.Kubeconfig)
	}
	t.Cleanup(func() {
		if os.Getenv("NING_LAB_KEEP") == "1" {
			t.Log("NING_LAB_KEEP=1: the lab stays up (make lab-down removes it)")
			return
		}
		e.ningLab(context.Background(), t, "down")
		if left := lab.Leftovers(context.Background()); len(left) > 0 {
			t.Errorf("left after ning lab down:\n%s", strings.Join(left, "\n"))
		}
	})
	cfg, err := clientcmd.BuildConfigFromFlags("", lab.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if e.client, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	e.siteOf = map[string]string{}
	for _, s := range e.spec.Sites {
		e.siteOf[s.Name+"-1"] = s.Name
	}
	t.Run("ning pods Ready", e.testPodsReady)
	t.Run("broker through its Service DNS name", e.testBrokerDNS)
	t.Run("prober RTT from pods", e.testProberRTT)
	t.Run("delay label lands where ning place says", e.testPlacement)
	t.Run("traffic change moves pods within PDBs", e.testTrafficMove)
	t.Run("site power-off recovery", e.testPowerOff)
}

func isReady(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady && c.Status == v1.ConditionTrue {
			return true
		}
	}
	return false
}

func (e *env) testPodsReady(t *testing.T) {
	pods, err := e.client.CoreV1().Pods(lab.Namespace).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, p := range pods.Items {
		c := p.Labels["app.kubernetes.io/component"]
		if !isReady(&p) {
			t.Errorf("pod %s (%s) on %s is not Ready", p.Name, c, p.Spec.NodeName)
		}
		count[c]++
		if p.Labels["app.kubernetes.io/component"] == "broker" {
			e.brokerIP = p.Status.PodIP
		}
	}
	want := map[string]int{"scheduler": 1, "rescheduler": 1, "broker": 1, "prober": len(e.spec.Sites)}
	for c, n := range want {
		if count[c] != n {
			t.Errorf("%d %s pods, want %d (all: %v)", count[c], c, n, count)
		}
	}
	if e.brokerIP == "" {
		t.Fatal("no broker pod IP")
	}
}

// runPod runs a busybox pod in default to completion and returns its phase.
func (e *env) runPod(ctx context.Context, t *testing.T, name, script string) v1.PodPhase {
	t.Helper()
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.PodSpec{RestartPolicy: v1.RestartPolicyNever, Containers: []v1.Container{{
			Name: "check", Image: "docker.io/library/busybox:ning-lab", ImagePullPolicy: v1.PullNever,
			Command: []string{"/bin/sh", "-c", script},
		}}},
	}
	if _, err := e.client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		p, err := e.client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err == nil && (p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed) {
			logs, _ := e.client.CoreV1().Pods("default").GetLogs(name, &v1.PodLogOptions{}).DoRaw(ctx)
			t.Logf("pod %s on %s: %s\n%s", name, p.Spec.NodeName, p.Status.Phase, logs)
			return p.Status.Phase
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("pod %s did not finish in 2 minutes", name)
	return ""
}

func (e *env) testBrokerDNS(t *testing.T) {
	host := fmt.Sprintf("%s-broker.%s.svc.cluster.local", lab.Release, lab.Namespace)
	phase := e.runPod(t.Context(), t, "broker-dns", fmt.Sprintf("nslookup %s && nc -w 5 %s 1883 </dev/null", host, host))
	if phase != v1.PodSucceeded {
		t.Errorf("a pod could not resolve or reach %s:1883 (phase %s)", host, phase)
	}
}

// mqttConfig is how the test reaches the lab's broker as the chart's
// ServiceAccount account (ning-scheduler to read reports, ning-discover to
// publish traffic): with a token of that account for the broker's audience,
// as the chart's pods do (mqtt.auth=token, docs/security.md).
func (e *env) mqttConfig(ctx context.Context, t *testing.T, id, account string) mqtt.Config {
	t.Helper()
	tr, err := e.client.CoreV1().ServiceAccounts("ning").CreateToken(ctx, account, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"ning-broker"}, ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a broker token for %s: %v", account, err)
	}
	return mqtt.Config{BrokerURL: "mqtt://" + e.brokerIP + ":1883", ClientID: id, Username: broker.TokenUsername, Password: tr.Status.Token}
}

// quietPSI is the CPU pressure (PSI "some" avg10, percent) under which the
// machine counts as quiet for the prober check: the lab alone keeps it well
// below. On a machine shared with builds it reaches 100 %, and the delayer's
// and the prober's own scheduling delays then add milliseconds that are the
// machine's, not the prober's (docs/lab.md).
const quietPSI = 40.0

// cpuPressure reads the machine's CPU pressure (PSI some avg10, percent).
func cpuPressure() (float64, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0, err
	}
	st, err := fs.PSIStatsForResource("cpu")
	if err != nil || st.Some == nil {
		return 0, fmt.Errorf("no CPU pressure information (PSI): %v", err)
	}
	return st.Some.Avg10, nil
}

// testProberRTT reads the prober pods' LatencyReports from the broker and
// compares each site pair's median RTT with the topology's, over the rounds
// measured while the machine was quiet (quietPSI); every round is logged.
func (e *env) testProberRTT(t *testing.T) {
	if _, err := cpuPressure(); err != nil {
		skip(t, "the prober check needs the CPU pressure to tell a quiet machine: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	type round struct{ p50, psi float64 }
	var mu sync.Mutex
	got := map[[2]string][]round{}
	_, err := mqtt.NewSubscriber(ctx, e.mqttConfig(ctx, t, "lab-test-rtt", "ning-scheduler"), mqtt.SubscriberOptions{Topics: []string{mqtt.TopicLatencyAll}},
		func(_ string, payload []byte) {
			var r ningv1.LatencyReport
			if proto.Unmarshal(payload, &r) != nil {
				return
			}
			psi, _ := cpuPressure()
			mu.Lock()
			defer mu.Unlock()
			for _, tr := range r.Targets {
				if tr.Received > 0 {
					k := [2]string{r.SourceSite, tr.Site}
					got[k] = append(got[k], round{tr.P50Ms, psi})
				}
			}
		}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	m := e.spec.Matrix()
	names := e.spec.SiteNames()
	pairs := len(names) * (len(names) - 1)
	// Three quiet rounds for every pair (the retained first report and two
	// fresh ones), or the timeout.
	const want = 3
	quiet := func(rs []round) []float64 {
		var out []float64
		for _, r := range rs {
			if r.psi < quietPSI {
				out = append(out, r.p50)
			}
		}
		return out
	}
	enough := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, rs := range got {
			if len(quiet(rs)) >= want {
				n++
			}
		}
		return n, n >= pairs
	}
	for {
		n, ok := enough()
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			psi, _ := cpuPressure()
			mu.Lock()
			total := len(got)
			mu.Unlock()
			if total < pairs {
				t.Fatalf("reports for %d of %d site pairs in 2 minutes", total, pairs)
			}
			// Not a pass: under CI (NING_REQUIRE_LAB=1) this fails.
			skip(t, "the machine was never quiet enough to check the prober's ±2 ms: %d of %d pairs had %d rounds under %.0f %% CPU pressure in 2 minutes (now %.0f %%)",
				n, pairs, want, quietPSI, psi)
			return
		case <-time.After(time.Second):
		}
	}
	mu.Lock()
	defer mu.Unlock()
	worst := 0.0
	for i, a := range names {
		for j, b := range names {
			if i == j {
				continue
			}
			rs := got[[2]string{a, b}]
			var all []string
			for _, r := range rs {
				all = append(all, fmt.Sprintf("%.2f@%.0f%%", r.p50, r.psi))
			}
			// The median over quiet rounds of each round's median: a round
			// in which the lab's own work stalled the delayer or the prober
			// does not move it, a link that is off by more than 2 ms does.
			s := quiet(rs)
			sort.Float64s(s)
			med := s[len(s)/2]
			d := med - m[i][j]
			worst = math.Max(worst, math.Abs(d))
			t.Logf("prober %s -> %s: configured %.1f ms, measured %.2f ms (%+.2f; quiet rounds %d of %d; p50@PSI %s)", a, b, m[i][j], med, d, len(s), len(rs), strings.Join(all, " "))
			if math.Abs(d) > 2 {
				t.Errorf("prober %s -> %s: %.2f ms, want %.1f ± 2 ms", a, b, med, m[i][j])
			}
		}
	}
	t.Logf("prober accuracy from pods: worst |error| %.2f ms over %d pairs, rounds under %.0f %% CPU pressure", worst, pairs, quietPSI)
}

// publishTraffic publishes a TrafficReport as the discovery gateway would.
func (e *env) publishTraffic(ctx context.Context, t *testing.T, traffic map[string]float64) {
	t.Helper()
	pub, err := mqtt.NewPublisher(ctx, e.mqttConfig(ctx, t, fmt.Sprintf("lab-test-traffic-%d", time.Now().UnixNano()), "ning-discover"), mqtt.PublisherOptions{}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r := &ningv1.TrafficReport{Source: "lab-test", Time: timestamppb.Now(), WindowSeconds: 60}
	for _, s := range sortedKeys(traffic) {
		r.Sites = append(r.Sites, &ningv1.SiteTraffic{Site: s, RequestsPerSecond: traffic[s]})
	}
	if err := pub.PublishTraffic(r); err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_ = pub.Close(ctx)
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// place runs `ning place` on the topology with traffic replaced.
func (e *env) place(t *testing.T, traffic map[string]float64, replicas int) map[string]int {
	t.Helper()
	spec := *e.spec
	spec.Sites = append([]topology.SiteSpec(nil), e.spec.Sites...)
	for i := range spec.Sites {
		spec.Sites[i].Traffic = traffic[spec.Sites[i].Name]
	}
	p := placement.FromSpec(&spec, replicas, 0)
	res, err := cli.Place(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for s, n := range res.Placement {
		if n > 0 {
			out[s] = n
		}
	}
	return out
}

func workload(name string, replicas int32, labels map[string]string) *appsv1.Deployment {
	l := map[string]string{"app": name}
	for k, v := range labels {
		l[k] = v
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec: v1.PodSpec{
					SchedulerName:                 "ning-scheduler",
					TerminationGracePeriodSeconds: ptr.To[int64](2),
					Containers: []v1.Container{{
						Name: "http", Image: "ghcr.io/ning-edge/lab-workload:lab", ImagePullPolicy: v1.PullNever,
						Args:  []string{"-service-time=5ms", "-concurrency=4"},
						Ports: []v1.ContainerPort{{ContainerPort: 8080}},
						ReadinessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 2},
						Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("10m"), v1.ResourceMemory: resource.MustParse("16Mi")}},
					}},
				},
			},
		},
	}
}

// placementOf counts app's Ready pods per site, and all its pods.
func (e *env) placementOf(ctx context.Context, app string) (perSite map[string]int, ready, total int, err error) {
	pods, err := e.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, 0, 0, err
	}
	perSite = map[string]int{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		total++
		if isReady(&p) {
			ready++
			perSite[e.siteOf[p.Spec.NodeName]]++
		}
	}
	return perSite, ready, total, nil
}

// waitPlacement waits until app's Ready pods are spread as want.
func (e *env) waitPlacement(ctx context.Context, t *testing.T, app string, want map[string]int, timeout time.Duration) time.Duration {
	t.Helper()
	took, last, ok := e.waitPlacementOK(ctx, app, want, timeout)
	if !ok {
		t.Fatalf("%s: Ready pods per site %v after %s, want %v", app, last, timeout, want)
	}
	return took
}

// waitPlacementOK is waitPlacement without failing: ok false, last is the
// placement seen at the timeout.
func (e *env) waitPlacementOK(ctx context.Context, app string, want map[string]int, timeout time.Duration) (took time.Duration, last map[string]int, ok bool) {
	t0 := time.Now()
	for time.Since(t0) < timeout {
		ps, _, _, err := e.placementOf(ctx, app)
		if err == nil && cmp.Diff(want, ps) == "" {
			return time.Since(t0), ps, true
		}
		last = ps
		time.Sleep(250 * time.Millisecond)
	}
	return timeout, last, false
}

var baseTraffic = func(spec *topology.Spec) map[string]float64 {
	m := map[string]float64{}
	for _, s := range spec.Sites {
		m[s.Name] = s.Traffic
	}
	return m
}

func (e *env) testPlacement(t *testing.T) {
	ctx := t.Context()
	traffic := baseTraffic(e.spec)
	e.publishTraffic(ctx, t, traffic)
	time.Sleep(3 * time.Second) // the scheduler's subscriber takes the retained report
	const replicas = 3
	want := e.place(t, traffic, replicas)
	// The delay limit from downtown (25 ms) rules out no site the plan
	// uses, with room for the delayer's overhead and a loaded machine's
	// outliers (the scheduler saw 10.9 ms for the 5 ms downtown-university
	// link on a machine with a load of 30).
	d := workload("placed", replicas, map[string]string{"delay_downtown": "25"})
	if _, err := e.client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	took := e.waitPlacement(ctx, t, "placed", want, 2*time.Minute)
	t.Logf("ning place says %v; the ning-scheduler placed the same (Ready after %s)", want, took.Round(100*time.Millisecond))
}

// cost is the traffic-weighted mean RTT (ms) of a placement over the
// topology's configured RTTs, as ning place computes it.
func (e *env) cost(traffic map[string]float64, at map[string]int) float64 {
	spec := *e.spec
	spec.Sites = append([]topology.SiteSpec(nil), e.spec.Sites...)
	for i := range spec.Sites {
		spec.Sites[i].Traffic = traffic[spec.Sites[i].Name]
	}
	p := placement.FromSpec(&spec, 0, 0)
	x := make(placement.Placement, len(p.Sites))
	for i, s := range p.Sites {
		x[i] = at[s]
	}
	return p.Cost(x)
}

// The rescheduler's thresholds in the lab (test/lab/values.yaml and the
// rescheduler's --min-gain-ms default): a traffic change whose best move
// gains less is, rightly, not acted on.
const (
	reschedulerThreshold = 0.1
	reschedulerMinGainMs = 1.0
)

func (e *env) testTrafficMove(t *testing.T) {
	ctx := t.Context()
	// Two replicas for three edge sites with traffic, so that a traffic
	// change leaves a site without the replica it now needs. (With four,
	// every edge site keeps one: the only gain left would be at the cloud
	// site, where the scheduler's CloudFallback puts no pod while an edge
	// node fits.)
	const replicas = 2
	// The starting traffic makes the first placement clear-cut: downtown,
	// then the airport (300 rps 9 ms away, against the university's 50 rps
	// 5 ms away). The topology's own figures (airport 150, university 220)
	// leave a 20 % margin between the two, which the measured RTTs of a
	// loaded machine (up to +3 ms) reversed in one run.
	start := map[string]float64{"downtown": 400, "airport": 300, "university": 50, "cloud": 0}
	e.publishTraffic(ctx, t, start)
	time.Sleep(3 * time.Second) // the scheduler's and the rescheduler's subscribers take it
	d := workload("moved", replicas, nil)
	if _, err := e.client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := e.place(t, start, replicas)
	e.waitPlacement(ctx, t, "moved", before, 2*time.Minute)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "moved", Namespace: "default"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(replicas - 1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "moved"}}},
	}
	if _, err := e.client.PolicyV1().PodDisruptionBudgets("default").Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Traffic leaves downtown for the university and the airport. The
	// change must be worth a move to the rescheduler: an earlier version
	// of this check moved the traffic to the airport, which already held a
	// replica, and ning place's new plan gained 0.15 ms (below the
	// rescheduler's 1 ms minimum): no move was the right answer.
	// Every site is named, downtown and cloud with 0: a report updates
	// the sites it names, and the others would keep their old rates.
	shifted := map[string]float64{"university": 900, "airport": 200, "downtown": 0, "cloud": 0}
	after := e.place(t, shifted, replicas)
	if cmp.Diff(before, after) == "" {
		t.Fatalf("the traffic change does not change the plan (%v): the test would prove nothing", before)
	}
	if after["cloud"] > 0 {
		t.Fatalf("ning place puts a replica on the cloud site (%v), where the ning-scheduler's CloudFallback puts none while an edge node fits", after)
	}
	from, to := e.cost(shifted, before), e.cost(shifted, after)
	t.Logf("weighted RTT under the new traffic: %.2f ms as placed (%v), %.2f ms as ning place plans (%v)", from, before, to, after)
	if from-to < 2*reschedulerMinGainMs || (from-to)/from < 2*reschedulerThreshold {
		t.Fatalf("the plan gains %.2f ms (%.0f %%), too little over the rescheduler's thresholds (%.0f ms, %.0f %%) for the test to prove a move",
			from-to, 100*(from-to)/from, reschedulerMinGainMs, 100*reschedulerThreshold)
	}
	stop := make(chan struct{})
	minReady, minHealthy := replicas, int32(replicas)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if _, ready, _, err := e.placementOf(ctx, "moved"); err == nil && ready < minReady {
				minReady = ready
			}
			// The disruption controller's own count (kube-controller-manager).
			if p, err := e.client.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "moved", metav1.GetOptions{}); err == nil &&
				p.Status.ObservedGeneration == p.Generation && p.Status.ExpectedPods > 0 && p.Status.CurrentHealthy < minHealthy {
				minHealthy = p.Status.CurrentHealthy
			}
		}
	}()
	e.publishTraffic(ctx, t, shifted)
	took, last, ok := e.waitPlacementOK(ctx, "moved", after, 3*time.Minute)
	// Then the placement must hold: three more rescheduler passes (5 s
	// each in the lab) without another eviction. A rescheduler whose
	// prediction of the scheduler is wrong evicts again every pass.
	var moved []string
	if ok {
		names := e.podNames(ctx, t, "moved")
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
			if now := e.podNames(ctx, t, "moved"); cmp.Diff(names, now) != "" {
				moved = now
				break
			}
		}
	}
	close(stop)
	wg.Wait()
	if !ok || moved != nil {
		e.diagnoseRescheduler(t)
	}
	if !ok {
		t.Fatalf("moved: Ready pods per site %v 3 minutes after the traffic change, want %v", last, after)
	}
	t.Logf("traffic moved to the university and the airport: pods moved %v -> %v in %s; fewest Ready during the moves %d, fewest healthy in the PDB's status %d (minAvailable %d)",
		before, after, took.Round(time.Second), minReady, minHealthy, replicas-1)
	if moved != nil {
		t.Errorf("the rescheduler evicted again after the pods reached the plan (pods now %v)", moved)
	}
	if minReady < replicas-1 || minHealthy < replicas-1 {
		t.Errorf("%d pods Ready (PDB status: %d healthy) during the moves: the PodDisruptionBudget (minAvailable %d) was violated", minReady, minHealthy, replicas-1)
	}
	e.publishTraffic(ctx, t, baseTraffic(e.spec))
	_ = e.client.AppsV1().Deployments("default").Delete(ctx, "moved", metav1.DeleteOptions{})
	_ = e.client.PolicyV1().PodDisruptionBudgets("default").Delete(ctx, "moved", metav1.DeleteOptions{})
}

// podNames lists app's pods that are not terminating, sorted.
func (e *env) podNames(ctx context.Context, t *testing.T, app string) []string {
	t.Helper()
	pods, err := e.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p.Name)
		}
	}
	sort.Strings(out)
	return out
}

// diagnoseRescheduler logs what the rescheduler saw and decided: its
// decision counters, weighted RTTs and store metrics, and its last log lines.
func (e *env) diagnoseRescheduler(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	pods, err := e.client.CoreV1().Pods(lab.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=rescheduler"})
	if err != nil || len(pods.Items) == 0 {
		t.Logf("no rescheduler pod to diagnose (%v)", err)
		return
	}
	p := pods.Items[0]
	if resp, err := http.Get(fmt.Sprintf("http://%s:10262/metrics", p.Status.PodIP)); err == nil {
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		var keep []string
		for _, l := range strings.Split(string(body), "\n") {
			if !strings.HasPrefix(l, "#") && (strings.Contains(l, "ning_rescheduler_") || strings.Contains(l, "traffic") || strings.Contains(l, "ning_store")) {
				keep = append(keep, l)
			}
		}
		t.Logf("rescheduler %s metrics:\n%s", p.Name, strings.Join(keep, "\n"))
	} else {
		t.Logf("rescheduler metrics: %v", err)
	}
	logs, err := e.client.CoreV1().Pods(lab.Namespace).GetLogs(p.Name, &v1.PodLogOptions{TailLines: ptr.To[int64](80)}).DoRaw(ctx)
	t.Logf("rescheduler %s log (last 80 lines, %v):\n%s", p.Name, err, logs)
}

func (e *env) testPowerOff(t *testing.T) {
	ctx := t.Context()
	ps, ready, _, err := e.placementOf(ctx, "placed")
	if err != nil {
		t.Fatal(err)
	}
	// The site with the most pods of placed, the first by name on a tie; not
	// the cloud site, which holds ning's control components (docs/lab.md).
	victim, most := "", 0
	for _, s := range sortedKeys(ps) {
		if s != "cloud" && ps[s] > most {
			victim, most = s, ps[s]
		}
	}
	if victim == "" {
		t.Fatalf("no Ready pods of placed outside the cloud site: %v", ps)
	}
	t0 := time.Now()
	e.ningLab(ctx, t, "site", "stop", victim)
	// The timeline: every change of a placed pod, and of the victim
	// node's taints and Ready condition, as this test saw it.
	var timeline []string
	seen := map[string]string{}
	note := func(key, state string) {
		if seen[key] != state {
			seen[key] = state
			timeline = append(timeline, fmt.Sprintf("%6.1fs %s %s", time.Since(t0).Seconds(), key, state))
		}
	}
	var took time.Duration
	tainted := false
	for time.Since(t0) < 3*time.Minute {
		if n, err := e.client.CoreV1().Nodes().Get(ctx, victim+"-1", metav1.GetOptions{}); err == nil {
			var taints []string
			for _, tn := range n.Spec.Taints {
				taints = append(taints, tn.Key)
			}
			readyCond := "?"
			for _, c := range n.Status.Conditions {
				if c.Type == v1.NodeReady {
					readyCond = string(c.Status)
				}
			}
			note("node "+n.Name, fmt.Sprintf("Ready=%s taints=%v", readyCond, taints))
			for _, k := range taints {
				tainted = tainted || k == rescheduler.TaintNodeDown
			}
		}
		pods, err := e.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=placed"})
		if err != nil {
			time.Sleep(250 * time.Millisecond)
			continue
		}
		running, onVictim := 0, 0
		live := map[string]bool{}
		for _, p := range pods.Items {
			live["pod "+p.Name] = true
			state := fmt.Sprintf("node=%q phase=%s ready=%t", p.Spec.NodeName, p.Status.Phase, isReady(&p))
			if p.DeletionTimestamp != nil {
				state += " deleting"
			}
			note("pod "+p.Name, state)
			if p.DeletionTimestamp != nil {
				continue
			}
			if e.siteOf[p.Spec.NodeName] == victim {
				onVictim++
			} else if p.Status.Phase == v1.PodRunning && isReady(&p) {
				running++
			}
		}
		for k := range seen {
			if strings.HasPrefix(k, "pod ") && !live[k] {
				note(k, "gone")
			}
		}
		if onVictim == 0 && running >= ready {
			took = time.Since(t0)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("after site %s was powered off:\n%s", victim, strings.Join(timeline, "\n"))
	if took == 0 {
		e.diagnoseRescheduler(t)
		t.Fatalf("the pods on %s were not replaced elsewhere within 3 minutes", victim)
	}
	t.Logf("site %s powered off: its %d pods Running elsewhere after %s", victim, most, took.Round(100*time.Millisecond))
	// The taint keeps the scheduler from binding replacements to the dead
	// node (without it, the lab saw seven replacements bound there, each
	// deleted again a second later).
	if !tainted {
		t.Errorf("the rescheduler never tainted %s-1 %s", victim, rescheduler.TaintNodeDown)
	}
	if took > 30*time.Second {
		e.diagnoseRescheduler(t)
		t.Errorf("recovery took %s, want at most 30 s", took.Round(100*time.Millisecond))
	}
	e.ningLab(ctx, t, "site", "start", victim)
}
