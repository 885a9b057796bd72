package discover

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	testingclock "k8s.io/utils/clock/testing"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/broker"
	"github.com/ning-edge/ning/internal/broker/brokertest"
	"github.com/ning-edge/ning/internal/discover/promtest"
	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/testcluster"
	"github.com/ning-edge/ning/internal/topology"
)

// fixture nodes: site a (a1, a2 with the gateway), site b (b1, gateway),
// c1 without a zone label (a site of its own, gateway), site d (d1, no
// InternalIP, so no probe target).
var fixtureNodes = []struct{ name, site, ip string }{
	{"a1", "a", "10.0.0.1"}, {"a2", "a", "10.0.0.2"}, {"b1", "b", "10.0.1.1"}, {"c1", "", "10.0.2.1"}, {"d1", "d", ""},
}

func setupCluster(ctx context.Context, t *testing.T) *testcluster.ControlPlane {
	t.Helper()
	cp := testcluster.Start(t)
	c := cp.Client
	for _, n := range fixtureNodes {
		node, err := testcluster.CreateReadyNode(ctx, c, testcluster.Node{Name: n.name, Site: n.site})
		if err != nil {
			t.Fatal(err)
		}
		if n.ip != "" {
			node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.ip}}
			if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, ns := range []string{"traefik", "ning"} {
		if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, node := range []string{"a2", "b1", "c1"} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "traefik-" + node, Namespace: "traefik", Labels: map[string]string{"app.kubernetes.io/name": "traefik"}},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "traefik", Image: "traefik:v3"}}}}
		if _, err := c.CoreV1().Pods("traefik").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return cp
}

// otlpFeed pushes cumulative counter points for nodes into a receiver:
// value = rps × seconds since t0.
func otlpFeed(t *testing.T, r *OTLP, at time.Time, rps map[string]float64) {
	t.Helper()
	for node, v := range rps {
		sec := at.Sub(t0).Seconds()
		if n, msg := r.Ingest("", request(node, cum, true, pt{sec, 0, v * sec})); n != 0 {
			t.Fatalf("rejected: %s", msg)
		}
	}
}

func managedJobs(ctx context.Context, t *testing.T, c kubernetes.Interface) []batchv1.Job {
	t.Helper()
	l, err := c.BatchV1().Jobs("ning").List(ctx, metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedByValue})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func finishJob(ctx context.Context, t *testing.T, c kubernetes.Interface, j *batchv1.Job) {
	t.Helper()
	now := metav1.Now()
	j.Status.StartTime = &now
	j.Status.CompletionTime = &now
	j.Status.Succeeded = 1
	j.Status.Conditions = []batchv1.JobCondition{
		{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
		{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
	}
	if _, err := c.BatchV1().Jobs(j.Namespace).UpdateStatus(ctx, j, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("finishing job %s: %v", j.Name, err)
	}
}

// TestProbeJobInCluster runs discovery against a real kube-apiserver: the
// Job it creates is pinned to the busiest site, targets the other sites'
// representative nodes, carries the owner and cleanup settings, and
// re-running does not pile up Jobs; finished ones are cleaned up.
func TestProbeJobInCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cp := setupCluster(ctx, t)
	c := cp.Client
	cron, err := c.BatchV1().CronJobs("ning").Create(ctx, &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "ning-discover"},
		Spec: batchv1.CronJobSpec{Schedule: "*/5 * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "discover", Image: "ning:test"}}}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owner := &metav1.OwnerReference{APIVersion: "batch/v1", Kind: "CronJob", Name: cron.Name, UID: cron.UID}

	clk := testingclock.NewFakeClock(t0)
	recv := NewOTLP(OTLPOptions{Window: time.Minute, Clock: clk})
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Client: c, Source: recv, Clock: clk, Log: testLogger(t), Metrics: m,
		Cluster: ClusterOptions{SiteLabel: topology.DefaultSiteLabel},
		Job: JobOptions{Namespace: "ning", Image: "ning:test", Broker: "mqtt://ning-broker:1883", Owner: owner,
			Period: 5 * time.Minute, TTL: 10 * time.Minute, ServiceAccount: "ning-probe", ExtraArgs: []string{"--count", "10"}}})
	if err != nil {
		t.Fatal(err)
	}
	rates := map[string]float64{"a1": 10, "a2": 20, "b1": 45, "c1": 5, "d1": 1}
	step := func(at time.Time) *Result {
		t.Helper()
		clk.SetTime(at)
		otlpFeed(t, recv, at, rates)
		res, err := d.Step(ctx)
		if err != nil {
			t.Fatalf("step at %s: %v", at, err)
		}
		return res
	}

	// The first point only warms up; no Job from it.
	if res := step(t0.Add(10 * time.Second)); !res.Decision.WarmingUp || res.Job != nil {
		t.Fatalf("first step: warming %v job %v; want warming up, no job", res.Decision.WarmingUp, res.Job)
	}
	if n := len(managedJobs(ctx, t, c)); n != 0 {
		t.Fatalf("%d jobs while warming up", n)
	}

	res := step(t0.Add(20 * time.Second))
	wantSites := map[string]float64{"a": 30, "b": 45, "c1": 5, "d": 1}
	if diff := cmp.Diff(wantSites, res.Decision.Sites); diff != "" || res.Decision.Busiest != "b" {
		t.Fatalf("decision busiest %q, sites (-want +got):\n%s", res.Decision.Busiest, diff)
	}
	if !res.JobCreated || res.Job == nil {
		t.Fatalf("no job created: %s", res.Note)
	}
	jobs := managedJobs(ctx, t, c)
	if len(jobs) != 1 {
		t.Fatalf("%d jobs, want 1", len(jobs))
	}
	j := jobs[0]
	wantArgs := []string{"probe", "--once", "--publish", "--site", "b", "--broker", "mqtt://ning-broker:1883",
		"--target", "a/a2=10.0.0.2", // the gateway node stands for site a
		"--target", "c1/c1=10.0.2.1", // d has no InternalIP: no target
		"--count", "10"}
	ps := j.Spec.Template.Spec
	if diff := cmp.Diff(wantArgs, ps.Containers[0].Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	wantAffinity := &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
		{Key: topology.DefaultSiteLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{"b"}}}}}}
	if diff := cmp.Diff(wantAffinity, ps.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution); diff != "" {
		t.Errorf("affinity (-want +got):\n%s", diff)
	}
	if got := j.Spec.TTLSecondsAfterFinished; got == nil || *got != 600 {
		t.Errorf("ttlSecondsAfterFinished %v, want 600", got)
	}
	if diff := cmp.Diff([]metav1.OwnerReference{*owner}, j.OwnerReferences); diff != "" {
		t.Errorf("owner references (-want +got):\n%s", diff)
	}
	if ps.Containers[0].Image != "ning:test" || ps.RestartPolicy != corev1.RestartPolicyNever || ps.ServiceAccountName != "ning-probe" {
		t.Errorf("image %q restart %q sa %q", ps.Containers[0].Image, ps.RestartPolicy, ps.ServiceAccountName)
	}
	if j.Name != JobName("b", t0.Add(20*time.Second), 5*time.Minute) {
		t.Errorf("job name %s", j.Name)
	}

	// Again in the same period, and in the next one while the Job still runs.
	for _, at := range []time.Time{t0.Add(30 * time.Second), t0.Add(6 * time.Minute)} {
		if res := step(at); res.JobCreated {
			t.Errorf("step at %s created another job", at)
		}
		if n := len(managedJobs(ctx, t, c)); n != 1 {
			t.Fatalf("step at %s: %d jobs, want 1", at, n)
		}
	}
	// Once it finished, the next period starts a new one and the old one
	// goes (Keep 0).
	finishJob(ctx, t, c, &j)
	res = step(t0.Add(11 * time.Minute))
	if !res.JobCreated {
		t.Fatal("no job after the previous one finished")
	}
	jobs = managedJobs(ctx, t, c)
	if len(jobs) != 1 || jobs[0].Name == j.Name || jobs[0].DeletionTimestamp != nil && len(jobs) == 1 {
		names := []string{}
		for _, x := range jobs {
			names = append(names, x.Name)
		}
		t.Fatalf("jobs %v: want only the new one (old %s deleted)", names, j.Name)
	}
	if got := testutil.ToFloat64(m.JobsCreated); got != 2 {
		t.Errorf("jobs created metric %v, want 2", got)
	}
}

// TestBuildProbeJobCases covers the Jobs that are not made and the pinning
// of a site that is a single unlabelled node.
func TestBuildProbeJobCases(t *testing.T) {
	c := BuildCluster([]corev1.Node{mkNode("a1", "a", "10.0.0.1"), mkNode("c1", "", "10.0.2.1"), mkNode("d1", "d", "")},
		[]corev1.Pod{mkGateway("g", "a1")}, topology.DefaultSiteLabel)
	single := BuildCluster([]corev1.Node{mkNode("a1", "a", "10.0.0.1")}, nil, topology.DefaultSiteLabel)
	for _, tc := range []struct {
		name     string
		busiest  string
		cluster  *Cluster
		wantNote string
		check    func(*testing.T, *batchv1.Job)
	}{
		{name: "no traffic", busiest: "", cluster: c, wantNote: "no site has traffic"},
		{name: "only site", busiest: "a", cluster: single, wantNote: "only site"},
		{name: "unlabelled node site is pinned by name", busiest: "c1", cluster: c, check: func(t *testing.T, j *batchv1.Job) {
			want := []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"c1"}}}}}
			if diff := cmp.Diff(want, j.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms); diff != "" {
				t.Error(diff)
			}
			if args := j.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "a/a1=10.0.0.1") || slices.ContainsFunc(args, func(s string) bool { return strings.HasPrefix(s, "d/") }) {
				t.Errorf("targets %v", args)
			}
		}},
		{name: "no target with an address", busiest: "a", cluster: BuildCluster([]corev1.Node{mkNode("a1", "a", "10.0.0.1"), mkNode("d1", "d", "")}, nil, topology.DefaultSiteLabel),
			wantNote: "no other site has a node with an InternalIP (sites without one: d)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, note := BuildProbeJob(Decision{Busiest: tc.busiest, At: t0}, tc.cluster, JobOptions{SiteLabel: topology.DefaultSiteLabel})
			if tc.wantNote != "" {
				if j != nil || !strings.Contains(note, tc.wantNote) {
					t.Fatalf("job %v note %q, want none because %q", j != nil, note, tc.wantNote)
				}
				return
			}
			if j == nil {
				t.Fatalf("no job: %s", note)
			}
			tc.check(t, j)
		})
	}
}

func TestJobName(t *testing.T) {
	p := 5 * time.Minute
	a := JobName("eu-west-1a", t0, p)
	if a != JobName("eu-west-1a", t0.Add(time.Minute), p) {
		t.Error("name changed within one period")
	}
	if a == JobName("eu-west-1a", t0.Add(p), p) || a == JobName("EU_west_1a", t0, p) {
		t.Error("name did not change with the period or the site")
	}
	long := JobName(strings.Repeat("x.", 200), t0, p)
	if len(long) > 63 || strings.Contains(long, ".") {
		t.Errorf("name %q is not a DNS label", long)
	}
}

// sourceSwitch lets a test change which real source a Discoverer reads.
type sourceSwitch struct {
	mu  sync.Mutex
	cur Source
}

func (s *sourceSwitch) set(src Source) { s.mu.Lock(); s.cur = src; s.mu.Unlock() }
func (s *sourceSwitch) get() Source    { s.mu.Lock(); defer s.mu.Unlock(); return s.cur }
func (s *sourceSwitch) Name() string   { return s.get().Name() }
func (s *sourceSwitch) Window() time.Duration {
	return s.get().Window()
}
func (s *sourceSwitch) Sample(ctx context.Context, now time.Time) (Sample, error) {
	return s.get().Sample(ctx, now)
}

// TestDiscovererPrometheusBadDataKeepsDecision: against a real Prometheus
// and apiserver, a good step decides, publishes over MQTT and starts a Job;
// then each kind of bad data is counted by reason and leaves the decision,
// the retained report and the Jobs as they were.
func TestDiscovererPrometheusBadDataKeepsDecision(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gw := promtest.ServeGateway(t, []promtest.Flow{{Node: "a1", Entrypoint: "web", RPS: 30}, {Node: "a2", Entrypoint: "web", RPS: 30}, {Node: "b1", Entrypoint: "web", RPS: 20}, {Node: "ghost", Entrypoint: "web", RPS: 7}})
	prom := promtest.Start(t, gw)
	cp := setupCluster(ctx, t)

	b := brokertest.Start(t, broker.Config{Listen: "127.0.0.1:0", AllowAnonymous: true}, testLogger(t))
	mcfg := mqtt.Config{BrokerURL: "mqtt://" + b.Addr()}
	pctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	reg := prometheus.NewRegistry()
	pub, err := mqtt.NewPublisher(pctx, mcfg, mqtt.PublisherOptions{}, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	good, err := NewPrometheus(PrometheusOptions{URL: prom.URL, Query: testQuery})
	if err != nil {
		t.Fatal(err)
	}
	src := &sourceSwitch{cur: good}
	d, err := New(Config{Client: cp.Client, Source: src, Publisher: pub, Log: testLogger(t), Metrics: m,
		Cluster: ClusterOptions{SiteLabel: topology.DefaultSiteLabel}, Job: JobOptions{Namespace: "ning", Image: "ning:test"}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Once(ctx, 45*time.Second, 500*time.Millisecond)
	if err != nil {
		t.Fatalf("once: %v", err)
	}
	if res.Decision.Busiest != "a" || !res.JobCreated {
		t.Fatalf("decision %+v created %v", res.Decision, res.JobCreated)
	}
	if got := testutil.ToFloat64(m.Errors.WithLabelValues(ReasonUnknownNode)); got < 1 {
		t.Errorf("unknown node ghost not counted")
	}
	// The retained TrafficReport reaches a subscriber that comes later.
	got := make(chan *ningv1.TrafficReport, 4)
	sub, err := mqtt.NewSubscriber(pctx, mcfg, mqtt.SubscriberOptions{Topics: []string{mqtt.TopicTraffic}}, func(_ string, payload []byte) {
		r := &ningv1.TrafficReport{}
		if proto.Unmarshal(payload, r) == nil {
			got <- r
		}
	}, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close(context.Background()) })
	select {
	case r := <-got:
		if !proto.Equal(r, TrafficReport(res.Decision)) {
			t.Errorf("retained report %v, want %v", r, TrafficReport(res.Decision))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no retained TrafficReport")
	}

	last := d.Last()
	for _, tc := range []struct{ name, url, query, reason string }{
		{"unreachable", "http://127.0.0.1:1", testQuery, ReasonPromUnreachable},
		{"empty", prom.URL, `sum by (node) (rate(nothing_total[5s]))`, ReasonEmptyResult},
		{"NaN", prom.URL, `sum by (node) (rate(traefik_entrypoint_requests_total[5s])) * 0 / 0`, ReasonBadRate},
		{"negative", prom.URL, `-1 * sum by (node) (rate(traefik_entrypoint_requests_total[5s]))`, ReasonBadRate},
		{"unknown node only", prom.URL, `sum by (node) (rate(traefik_entrypoint_requests_total{node="ghost"}[5s]))`, ReasonUnknownNode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPrometheus(PrometheusOptions{URL: tc.url, Query: tc.query, Timeout: 3 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			src.set(p)
			before := testutil.ToFloat64(m.Errors.WithLabelValues(tc.reason))
			_, err = d.Step(ctx)
			var de *DataError
			if !errors.As(err, &de) || de.Reason != tc.reason {
				t.Fatalf("step error %v, want reason %s", err, tc.reason)
			}
			if after := testutil.ToFloat64(m.Errors.WithLabelValues(tc.reason)); after != before+1 {
				t.Errorf("errors_total{reason=%s} %v -> %v", tc.reason, before, after)
			}
			if d.Last() != last {
				t.Error("bad data replaced the previous decision")
			}
			if n := len(managedJobs(ctx, t, cp.Client)); n != 1 {
				t.Errorf("%d jobs, want still 1", n)
			}
		})
	}
	// Prometheus itself goes away mid-run: the query that worked fails as
	// unreachable and the previous decision stands.
	t.Run("prometheus killed", func(t *testing.T) {
		src.set(good)
		if err := prom.Kill(); err != nil {
			t.Fatal(err)
		}
		before := testutil.ToFloat64(m.Errors.WithLabelValues(ReasonPromUnreachable))
		_, err := d.Step(ctx)
		var de *DataError
		if !errors.As(err, &de) || de.Reason != ReasonPromUnreachable {
			t.Fatalf("step with Prometheus killed: error %v, want reason %s", err, ReasonPromUnreachable)
		}
		if after := testutil.ToFloat64(m.Errors.WithLabelValues(ReasonPromUnreachable)); after != before+1 {
			t.Errorf("errors_total{reason=%s} %v -> %v", ReasonPromUnreachable, before, after)
		}
		if d.Last() != last {
			t.Error("a Prometheus outage replaced the previous decision")
		}
		if n := len(managedJobs(ctx, t, cp.Client)); n != 1 {
			t.Errorf("%d jobs, want still 1", n)
		}
		t.Logf("Prometheus killed: %v; decision kept (busiest %s)", err, d.Last().Decision.Busiest)
	})
	select {
	case r := <-got:
		t.Errorf("bad data published %v", r)
	case <-time.After(200 * time.Millisecond):
	}
	if body, err := testutil.CollectAndLint(m.Errors); err != nil || len(body) > 0 {
		t.Errorf("metric lint: %v %v", body, err)
	}
}
