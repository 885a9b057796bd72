// Package lab_test is the lab suite (make test-lab, root): it brings the lab
// up with `ning lab up` exactly as a person would, checks ning installed from
// its Helm chart on real kubelets, containerd, kube-proxy and CoreDNS, drives
// faults with `ning lab`, and tears it all down with `ning lab down`.
package lab_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/cli"
	"github.com/ning-edge/ning/internal/lab"
	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/placement"
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
	t0 := time.Now()
	out := e.ningLab(ctx, t, "up", "--bin-dir", binDir, "--topology", "test/lab/"+topologyFile)
	t.Logf("bring-up took %s", time.Since(t0).Round(100*time.Millisecond))
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
		for _, leftover := range []string{lab.StateDir, lab.RunDir, "/var/run/netns/" + lab.ControlNetns, "/sys/class/net/" + lab.Bridge} {
			if _, err := os.Stat(leftover); err == nil {
				t.Errorf("%s is left after ning lab down", leftover)
			}
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

func (e *env) mqttConfig(id string) mqtt.Config {
	return mqtt.Config{BrokerURL: "mqtt://" + e.brokerIP + ":1883", ClientID: id, Username: "ning", Password: "ning-lab-password"}
}

// testProberRTT reads the prober pods' LatencyReports from the broker and
// compares each site pair's median RTT with the topology's.
func (e *env) testProberRTT(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	got := map[[2]string][]float64{}
	_, err := mqtt.NewSubscriber(ctx, e.mqttConfig("lab-test-rtt"), mqtt.SubscriberOptions{Topics: []string{mqtt.TopicLatencyAll}},
		func(_ string, payload []byte) {
			var r ningv1.LatencyReport
			if proto.Unmarshal(payload, &r) != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, tr := range r.Targets {
				if tr.Received > 0 {
					got[[2]string{r.SourceSite, tr.Site}] = append(got[[2]string{r.SourceSite, tr.Site}], tr.P50Ms)
				}
			}
		}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	m := e.spec.Matrix()
	names := e.spec.SiteNames()
	want := len(names) * (len(names) - 1)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= want {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("reports for %d of %d site pairs in 2 minutes: %v", n, want, got)
		case <-time.After(time.Second):
		}
	}
	// Two rounds more, so each pair has fresh samples.
	time.Sleep(20 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	worst := 0.0
	for i, a := range names {
		for j, b := range names {
			if i == j {
				continue
			}
			// The median over rounds of each round's median: a round in
			// which the shared machine stalled the delayer or the prober
			// does not move it, a link that is off by more than 2 ms does.
			s := append([]float64(nil), got[[2]string{a, b}]...)
			sort.Float64s(s)
			mean := s[len(s)/2]
			d := mean - m[i][j]
			worst = math.Max(worst, math.Abs(d))
			t.Logf("prober %s -> %s: configured %.1f ms, measured %.2f ms (%+.2f, %d rounds)", a, b, m[i][j], mean, d, len(s))
			if math.Abs(d) > 2 {
				t.Errorf("prober %s -> %s: %.2f ms, want %.1f ± 2 ms", a, b, mean, m[i][j])
			}
		}
	}
	t.Logf("prober accuracy from pods: worst |error| %.2f ms over %d pairs", worst, want)
}

// publishTraffic publishes a TrafficReport as the discovery gateway would.
func (e *env) publishTraffic(ctx context.Context, t *testing.T, traffic map[string]float64) {
	t.Helper()
	pub, err := mqtt.NewPublisher(ctx, e.mqttConfig(fmt.Sprintf("lab-test-traffic-%d", time.Now().UnixNano())), mqtt.PublisherOptions{}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
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
	res, err := cli.Place(p)
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
	t0 := time.Now()
	var last map[string]int
	for time.Since(t0) < timeout {
		ps, _, _, err := e.placementOf(ctx, app)
		if err == nil && cmp.Diff(want, ps) == "" {
			return time.Since(t0)
		}
		last = ps
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: Ready pods per site %v after %s, want %v", app, last, timeout, want)
	return 0
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

func (e *env) testTrafficMove(t *testing.T) {
	ctx := t.Context()
	const replicas = 4
	traffic := baseTraffic(e.spec)
	d := workload("moved", replicas, nil)
	if _, err := e.client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := e.place(t, traffic, replicas)
	e.waitPlacement(ctx, t, "moved", before, 2*time.Minute)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "moved", Namespace: "default"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(replicas - 1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "moved"}}},
	}
	if _, err := e.client.PolicyV1().PodDisruptionBudgets("default").Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Traffic moves to the airport.
	shifted := map[string]float64{}
	for s := range traffic {
		shifted[s] = 10
	}
	shifted["airport"] = 900
	after := e.place(t, shifted, replicas)
	if cmp.Diff(before, after) == "" {
		t.Fatalf("the traffic change does not change the plan (%v): the test would prove nothing", before)
	}
	stop := make(chan struct{})
	var minReady = replicas
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
		}
	}()
	e.publishTraffic(ctx, t, shifted)
	took := e.waitPlacement(ctx, t, "moved", after, 4*time.Minute)
	close(stop)
	wg.Wait()
	t.Logf("traffic moved to the airport: pods moved %v -> %v in %s; fewest Ready during the moves %d (PDB minAvailable %d)",
		before, after, took.Round(time.Second), minReady, replicas-1)
	if minReady < replicas-1 {
		t.Errorf("only %d pods Ready during the moves: the PodDisruptionBudget (minAvailable %d) was violated", minReady, replicas-1)
	}
	e.publishTraffic(ctx, t, traffic)
	_ = e.client.AppsV1().Deployments("default").Delete(ctx, "moved", metav1.DeleteOptions{})
	_ = e.client.PolicyV1().PodDisruptionBudgets("default").Delete(ctx, "moved", metav1.DeleteOptions{})
}

func (e *env) testPowerOff(t *testing.T) {
	ctx := t.Context()
	ps, ready, _, err := e.placementOf(ctx, "placed")
	if err != nil {
		t.Fatal(err)
	}
	victim, most := "", 0
	for s, n := range ps {
		if n > most {
			victim, most = s, n
		}
	}
	if victim == "" {
		t.Fatalf("no Ready pods of placed: %v", ps)
	}
	t0 := time.Now()
	e.ningLab(ctx, t, "site", "stop", victim)
	var took time.Duration
	for time.Since(t0) < 3*time.Minute {
		ps, r, _, err := e.placementOf(ctx, "placed")
		if err == nil && r == ready && ps[victim] == 0 {
			pods, _ := e.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=placed"})
			running := 0
			for _, p := range pods.Items {
				if p.Status.Phase == v1.PodRunning && isReady(&p) && e.siteOf[p.Spec.NodeName] != victim {
					running++
				}
			}
			if running >= ready {
				took = time.Since(t0)
				break
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	if took == 0 {
		t.Fatalf("the pods on %s were not replaced elsewhere within 3 minutes", victim)
	}
	t.Logf("site %s powered off: its %d pods Running elsewhere after %s", victim, most, took.Round(100*time.Millisecond))
	if took > 30*time.Second {
		t.Errorf("recovery took %s, want at most 30 s", took.Round(100*time.Millisecond))
	}
	e.ningLab(ctx, t, "site", "start", victim)
}
