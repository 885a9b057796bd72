package integration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/broker"
	"github.com/ning-edge/ning/internal/broker/brokertest"
	"github.com/ning-edge/ning/internal/logging/logtest"
	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/netem"
	"github.com/ning-edge/ning/internal/netem/netemtest"
	"github.com/ning-edge/ning/internal/nodesim"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/rescheduler"
	"github.com/ning-edge/ning/internal/source"
	"github.com/ning-edge/ning/internal/testcluster"
	"github.com/ning-edge/ning/internal/topology"
)

// partitionLinks are the emulated WAN links from the probing site a.
var partitionLinks = []struct {
	site string
	rtt  time.Duration
}{{"b", 10 * time.Millisecond}, {"c", 20 * time.Millisecond}, {"d", 100 * time.Millisecond}}

const (
	// partitionTTL is the store's TTL in this test (the default is 2 min).
	partitionTTL = 2 * time.Second
	// partitionPeriod is the prober's period; a round (3 probes 20 ms apart,
	// 150 ms timeout) fits well inside it.
	partitionPeriod = 300 * time.Millisecond
	// partitionTolerance bounds a measured RTT (a median over rounds)
	// against the configured one. The delayer adds about 0.8 ms; here it
	// shares a process with an apiserver, and a loaded two-CPU machine (load
	// average 10) added 5 ms to the median and 15 ms to single rounds.
	// Accuracy is TestNetnsEndToEnd's subject; this test needs c well inside
	// the 50 ms limit of its pods and d well outside it.
	partitionTolerance = 10.0 // ms
)

// TestPartitionedSite partitions a site for real and follows it through
// ning. The real `ning probe` runs in network namespace a and probes b, c and
// d over veth links with emulated WAN delay (NFQUEUE delayer); it publishes
// to an embedded broker reached over a separate control link, and the MQTT
// source feeds a Store (TTL 2 s) that the real scheduler and rescheduler
// read, against an in-process apiserver with simulated kubelets. Then site
// c's link goes down (ip link set down) and the test checks:
//
//   - a -> c goes unknown within the TTL (plus one report period) of the
//     link going down, while a -> b and a -> d stay known and unchanged, and
//     the reports with c lost are stored (loss), not rejected;
//   - placement.CheckSite with the default FailClosed policy rejects c and
//     says why;
//   - the scheduler (NetworkLatency) leaves a pod that may go to c or d
//     (delay_a: 50; d is measured at 100 ms) pending with both reasons; a pod
//     that only c could take waits too, as a measured RTT (d's) breaks its
//     constraint, and fails open to c with a NingDelayFailOpen Event when none
//     does (delay_a: 200), as the plugin's README documents;
//   - the rescheduler does not evict a pod on c whose constraint now rests on
//     the unknown RTT, over many cycles; a measured violation of the same
//     constraint is evicted at once (so the first check can fail);
//   - after the link comes back up, a -> c is measured again.
//
// It needs root, iproute2, iptables (with nfnetlink_queue) and the go tool;
// without them it skips with a message (a failure with NING_REQUIRE_NETNS=1).
func TestPartitionedSite(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	pl := newPartitionLab(ctx, t, "partitioned-site test")
	lab, store, srcReg, before := pl.lab, pl.store, pl.srcReg, pl.before

	// The cluster: sites a, b, c (two nodes each) and d (one node), the
	// scheduler and one rescheduler on this store, no traffic (so the
	// rescheduler's only reason to evict is a delay constraint).
	e, lead, ns := startPartitionCluster(t, store)
	constraint := map[string]string{"delay_a": "50"}
	// on-c may run in b or c (20 ms, within 50); b is cordoned while it is
	// placed, so it starts in c, and b is usable again afterwards.
	cordon(t, e.env, []string{"b-0", "b-1"}, true)
	e.createDeploymentEdit(t, ns, "on-c", 1, constraint, func(s *v1.PodSpec) {
		s.Affinity = zoneAffinity([]string{"b", "c"})
	})
	e.waitPlacement(t, ns, "on-c", map[string]int{"c": 1}, 60*time.Second)
	cordon(t, e.env, []string{"b-0", "b-1"}, false)
	// A pod that may run in c or d goes to c: d is 100 ms away.
	inCOrD := func(p *v1.Pod) { p.Spec.Affinity = zoneAffinity([]string{"c", "d"}) }
	e.createPod(t, ns, "before", constraint, inCOrD)
	if got := e.waitSite(t, ns, "before"); got != "c" {
		t.Fatalf("before the partition: pod in %s, want c", got)
	}

	// Partition c.
	cyclesBefore := lead.cycles(t)
	down := time.Now()
	if err := lab.SetLinks(ctx, "c", false); err != nil {
		t.Fatal(err)
	}
	// The other links stay measured, every time they are looked at; their
	// values are judged by the median (the delayers share this process
	// with an apiserver, and a garbage collection can hold a packet for
	// tens of milliseconds).
	seen := map[string][]float64{}
	others := func() {
		t.Helper()
		for _, l := range partitionLinks {
			if l.site == "c" {
				continue
			}
			ms, ok := store.RTT("a", l.site)
			if !ok {
				t.Fatalf("a -> %s went unknown %v after c's link went down", l.site, time.Since(down).Round(time.Millisecond))
			}
			seen[l.site] = append(seen[l.site], ms)
		}
	}
	var untilUnknown time.Duration
	waitUntil(ctx, t, partitionTTL+10*time.Second, "a -> c unknown", func() bool {
		others()
		if _, ok := store.RTT("a", "c"); !ok {
			untilUnknown = time.Since(down)
			return true
		}
		return false
	})
	t.Logf("a -> c unknown %.2f s after its link went down (TTL %v, report period %v)", untilUnknown.Seconds(), partitionTTL, partitionPeriod)
	if lo, hi := partitionTTL-partitionPeriod-time.Second, partitionTTL+partitionPeriod+time.Second; untilUnknown < lo || untilUnknown > hi {
		t.Errorf("a -> c unknown after %v, want between %v and %v (the TTL, less or plus a report period)", untilUnknown, lo, hi)
	}
	// Two more TTLs with c down: b and d stay measured, c stays unknown,
	// and the reports that carry c's losses are stored, not rejected.
	for deadline := time.Now().Add(2 * partitionTTL); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		others()
		if _, ok := store.RTT("a", "c"); ok {
			t.Fatal("a -> c known again while its link is down")
		}
	}
	for site, v := range seen {
		med := median(v)
		t.Logf("a -> %s while c was down: median %.2f ms (before %.2f), range %.2f..%.2f ms, %d looks", site, med, before[site], slices.Min(v), slices.Max(v), len(v))
		if math.Abs(med-before[site]) > partitionTolerance {
			t.Errorf("a -> %s: median %.2f ms while c was down, %.2f ms before (tolerance ±%.0f ms)", site, med, before[site], partitionTolerance)
		}
	}
	if l, _ := store.Link("a", "c"); l.Loss < 0.9 {
		t.Errorf("a -> c loss %.2f while partitioned, want near 1 (reports with c lost stored)", l.Loss)
	}
	if n := counterSum(t, srcReg, "ning_reports_rejected_total"); n != 0 {
		t.Errorf("%v reports rejected, want none (a dead target must not void a report)", n)
	}

	// placement.CheckSite, default policy.
	resolved := []placement.Resolved{{Constraint: placement.Constraint{Label: "delay_a", From: "a", MaxMs: 50}, FromSite: "a"}}
	if v := placement.CheckSite(resolved, "c", store, placement.FailClosed); v.OK || !v.Unknown ||
		v.Reason != "delay_a 50ms: no RTT measurement between a and c" {
		t.Errorf("CheckSite(c, FailClosed) = %+v, want rejected as unknown, saying so", v)
	}
	if v := placement.CheckSite(resolved, "b", store, placement.FailClosed); !v.OK {
		t.Errorf("CheckSite(b, FailClosed) = %+v, want accepted (b is measured)", v)
	}

	// The scheduler: c or d now fits nowhere (c unknown, d measured too
	// far), and the pod waits with both reasons. A pod that only c could
	// take waits too while a measured RTT (d's) breaks its constraint; with
	// a limit that no measurement breaks it fails open to c, with an Event.
	e.createPod(t, ns, "after", constraint, inCOrD)
	msg := e.waitUnschedulable(t, ns, "after")
	for _, want := range []string{"delay_a 50ms: no RTT measurement between a and c", "delay_a 50ms: d is "} {
		if !strings.Contains(msg, want) {
			t.Errorf("pending pod's message %q does not say %q", msg, want)
		}
	}
	onlyC := func(p *v1.Pod) { p.Spec.Affinity = zoneAffinity([]string{"c"}) }
	e.createPod(t, ns, "only-c", constraint, onlyC)
	if msg := e.waitUnschedulable(t, ns, "only-c"); !strings.Contains(msg, "delay_a 50ms: no RTT measurement between a and c") {
		t.Errorf("only-c's message %q does not say c is unmeasured", msg)
	}
	e.createPod(t, ns, "only-c-loose", map[string]string{"delay_a": "200"}, onlyC)
	if got := e.waitSite(t, ns, "only-c-loose"); got != "c" {
		t.Errorf("only-c-loose in %s, want c (fail open)", got)
	}
	note := e.waitEvent(t, ns, "only-c-loose", "NingDelayFailOpen")
	for _, name := range []string{"after", "only-c"} {
		if p, err := e.c.CoreV1().Pods(ns).Get(e.ctx, name, metav1.GetOptions{}); err != nil || p.Spec.NodeName != "" {
			t.Errorf("pod %s bound to %q (%v) while c is unknown and d measured too far", name, p.Spec.NodeName, err)
		}
	}

	// The rescheduler: many cycles on the unknown RTT, no eviction.
	waitUntil(ctx, t, 30*time.Second, "rescheduler cycles", func() bool { return lead.cycles(t) >= cyclesBefore+10 })
	if n := lead.evictions(t, ""); n != 0 {
		t.Fatalf("the rescheduler evicted %v pods on an unknown RTT", n)
	}
	e.waitPlacement(t, ns, "on-c", map[string]int{"c": 1}, 10*time.Second)
	unknownCycles := lead.cycles(t) - cyclesBefore

	// Control: the same constraint broken by a measured RTT is evicted.
	violation := time.Now()
	waitUntil(ctx, t, 30*time.Second, "eviction on a measured violation", func() bool {
		if err := store.ObserveRTT(topology.RTTSample{From: "a", To: "c", MeanMs: 80, Sent: 5, Received: 5, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
		return lead.evictions(t, "delay_violation") >= 1
	})
	t.Logf("measured violation (a -> c 80 ms > 50 ms) evicted after %.2f s; none in %d cycles on the unknown RTT",
		time.Since(violation).Seconds(), unknownCycles)

	// Heal: the link comes back and c is measured again. Wait out the
	// injected figure first, so the next measurement replaces it.
	time.Sleep(partitionTTL + 100*time.Millisecond)
	up := time.Now()
	if err := lab.SetLinks(ctx, "c", true); err != nil {
		t.Fatal(err)
	}
	waitUntil(ctx, t, 20*time.Second, "a -> c measured again", func() bool {
		ms, ok := store.RTT("a", "c")
		return ok && math.Abs(ms-before["c"]) <= partitionTolerance
	})
	t.Logf("a -> c measured again %.2f s after its link came up; b and d unchanged throughout; fail-open event: %s",
		time.Since(up).Seconds(), note)
}

// partitionLab is the lab of the partition tests: namespaces a, b, c and
// d, WAN links from a to each other (partitionLinks), the real `ning probe`
// in a publishing to a broker in this process over a control link, and the
// store it feeds (TTL partitionTTL), every link measured as configured.
type partitionLab struct {
	lab    *netem.Lab
	store  *topology.Store
	srcReg *prometheus.Registry
	// before is each link's median RTT over a few rounds, in ms.
	before map[string]float64
}

// newPartitionLab builds the lab; without root, iproute2, iptables (with
// nfnetlink_queue) or the go tool it skips the test, saying it is what.
func newPartitionLab(ctx context.Context, t *testing.T, what string) *partitionLab {
	t.Helper()
	netemtest.RequireBuildLab(t, what)
	bin := buildNing(t)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))

	netemtest.LockForTiming(t)
	lab, err := netem.NewLab(fmt.Sprintf("npart%d", os.Getpid()%100000))
	if err != nil {
		netemtest.Skip(t, "%s skipped: %v", what, err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("cleaning up the lab: %v", err)
		}
	})
	netemtest.Seed(t, lab)
	for _, n := range []string{"a", "b", "c", "d"} {
		if err := lab.AddNamespace(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	var targets []string
	for _, l := range partitionLinks {
		_, addr, err := lab.Link(ctx, "a", l.site, netem.Shape{Delay: l.rtt})
		if err != nil {
			if strings.Contains(strings.ToLower(err.Error()), "nfqueue") {
				netemtest.Skip(t, "%s skipped: no NFQUEUE support: %v", what, err)
			}
			t.Fatal(err)
		}
		targets = append(targets, "--target", l.site+"="+addr)
	}
	brokerIP := controlLink(ctx, t, lab, "a")

	// The broker in this process, on the control link; the prober in a.
	b := brokertest.Start(t, broker.Config{Listen: brokerIP + ":0", AllowAnonymous: true}, log.With("component", "broker"))
	url := "mqtt://" + b.Addr()
	store := topology.NewStore(topology.Config{TTL: partitionTTL}, clock.RealClock{})
	srcReg := prometheus.NewRegistry()
	src, err := source.NewMQTT(store, source.Config{AllowedSites: []string{"a", "b", "c", "d"}}, clock.RealClock{}, srcReg, log)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := mqtt.NewSubscriber(ctx, mqtt.Config{BrokerURL: url, MinBackoff: 20 * time.Millisecond}, mqtt.SubscriberOptions{},
		src.Handle, prometheus.NewRegistry(), log.With("component", "subscriber"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close(context.Background()) })
	startProber(ctx, t, lab, bin, append([]string{"probe", "--site", "a", "--node", "a-0", "--methods", "icmp",
		"--count", "3", "--interval", "20ms", "--timeout", "150ms", "--period", partitionPeriod.String(), "--jitter", "0",
		"--listen", "", "--broker", url, "--log-level", "warn"}, targets...))

	// Every link measured, as configured.
	waitUntil(ctx, t, 30*time.Second, "every link measured", func() bool {
		for _, l := range partitionLinks {
			if _, ok := store.RTT("a", l.site); !ok {
				return false
			}
		}
		return true
	})
	// The median over a few rounds: the machine is shared, and a delayer
	// that waits for a CPU holds a packet longer.
	before := map[string]float64{}
	samples := map[string][]float64{}
	for deadline := time.Now().Add(8 * partitionPeriod); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, l := range partitionLinks {
			if ms, ok := store.RTT("a", l.site); ok {
				samples[l.site] = append(samples[l.site], ms)
			}
		}
	}
	for _, l := range partitionLinks {
		before[l.site] = median(samples[l.site])
		if cfg := float64(l.rtt) / float64(time.Millisecond); math.Abs(before[l.site]-cfg) > partitionTolerance {
			t.Fatalf("a -> %s: %.2f ms measured, %.0f ms configured (tolerance ±%.0f ms)", l.site, before[l.site], cfg, partitionTolerance)
		}
	}

	return &partitionLab{lab: lab, store: store, srcReg: srcReg, before: before}
}

// startPartitionCluster runs the partition tests' cluster on store: sites
// a, b, c (two nodes each) and d (one node), the scheduler and one
// rescheduler (its leader is returned), and a namespace for the test, whose
// pods and Events are logged if it fails.
func startPartitionCluster(t *testing.T, store *topology.Store) (*reschedEnv, *instance, string) {
	t.Helper()
	e := startReschedEnvOn(t, testcluster.Start(t), reschedOptions{replicas: 1, store: store})
	if err := e.sim.AddNode(e.ctx, nodesim.Node{Name: "d-0", Site: "d"}); err != nil {
		t.Fatal(err)
	}
	e.site["d-0"] = "d"
	lead, _ := e.leader(t)
	ns := e.namespace(t)
	t.Cleanup(func() {
		if t.Failed() {
			dumpPods(t, e.env, ns)
		}
	})
	return e, lead, ns
}

// controlLink joins namespace ns to this process's namespace with a veth
// pair, so a broker listening here is reachable from ns, and returns this
// end's address. Deleting ns deletes the pair.
func controlLink(ctx context.Context, t *testing.T, lab *netem.Lab, ns string) string {
	t.Helper()
	id := os.Getpid() % 100000
	here, there := fmt.Sprintf("npc%d", id), fmt.Sprintf("npc%dp", id)
	prefix := fmt.Sprintf("10.79.%d", id%250)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("link", "add", here, "type", "veth", "peer", "name", there, "netns", lab.Namespace(ns))
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", here).Run() })
	run("addr", "add", prefix+".1/30", "dev", here)
	run("link", "set", here, "up")
	run("-n", lab.Namespace(ns), "addr", "add", prefix+".2/30", "dev", there)
	run("-n", lab.Namespace(ns), "link", "set", there, "up")
	return prefix + ".1"
}

// startProber runs `ning args...` in namespace a until the test ends.
func startProber(ctx context.Context, t *testing.T, lab *netem.Lab, bin string, args []string) {
	t.Helper()
	pctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(pctx, "ip", append([]string{"netns", "exec", lab.Namespace("a"), bin}, args...)...)
	var stderr logtest.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		err := cmd.Wait()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Errorf("ning probe: %v", err)
		}
		if out := stderr.String(); out != "" {
			t.Logf("ning probe's log:\n%s", out)
		}
	})
}

// waitUntil polls cond every 20 ms and fails the test after timeout.
func waitUntil(ctx context.Context, t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// zoneAffinity requires one of the sites.
func zoneAffinity(sites []string) *v1.Affinity {
	return &v1.Affinity{NodeAffinity: &v1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
			MatchExpressions: []v1.NodeSelectorRequirement{{Key: v1.LabelTopologyZone, Operator: v1.NodeSelectorOpIn, Values: sites}},
		}}},
	}}
}

// cordon marks nodes unschedulable, or schedulable again.
func cordon(t *testing.T, e *env, nodes []string, on bool) {
	t.Helper()
	patch := []byte(fmt.Sprintf(`{"spec":{"unschedulable":%v}}`, on))
	for _, n := range nodes {
		if _, err := e.c.CoreV1().Nodes().Patch(e.ctx, n, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// dumpPods logs where each pod of ns is, its conditions and the events.
func dumpPods(t *testing.T, e *env, ns string) {
	ctx := context.WithoutCancel(e.ctx)
	pods, err := e.c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Logf("listing pods: %v", err)
		return
	}
	for _, p := range pods.Items {
		t.Logf("pod %s: node %q phase %s conditions %+v", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.Conditions)
	}
	evs, err := e.c.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, ev := range evs.Items {
			t.Logf("event %s %s: %s", ev.Regarding.Name, ev.Reason, ev.Note)
		}
	}
}

// median is the middle of v (NaN for none).
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// counterSum adds up every series of a counter in reg.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestPartitionOrDeath tells a site cut off from the control plane from a
// dead one, with real probers. The lab and the prober in a are
// TestPartitionedSite's; the cluster is sites a, b, c (two nodes each) and
// d (one node) with simulated kubelets, ning's scheduler and one
// rescheduler with its defaults (node down after 20 s, data-plane window
// 1 min, partition autonomy 10 min) on the prober's store.
//
//   - Only c's link to the control plane is cut: c's kubelets fall silent,
//     but a's probes still reach c. c's nodes are tainted and counted cut
//     off, its two pods are kept (the same pods, not terminating, for the
//     node-down delay and more after), and their Deployment gets two
//     replicas more, which run in b. When c's kubelets are heard again, the
//     taint goes and the Deployment is back to two replicas.
//   - The whole of site d is lost (its kubelet silent and its link down): its
//     pod is replaced in b within the node-down delay (and a few seconds of
//     checks and scheduling), as before.
func TestPartitionOrDeath(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	pl := newPartitionLab(ctx, t, "partition-or-death test")
	e, lead, ns := startPartitionCluster(t, pl.store)
	nodeDownAfter := rescheduler.DefaultConfig().NodeDownAfter
	// web runs two pods in c, far one in d: b is cordoned while they are
	// placed, and takes what is added or replaced afterwards.
	cordon(t, e.env, []string{"b-0", "b-1"}, true)
	e.createDeploymentEdit(t, ns, "web", 2, nil, func(s *v1.PodSpec) { s.Affinity = zoneAffinity([]string{"b", "c"}) })
	e.createDeploymentEdit(t, ns, "far", 1, nil, func(s *v1.PodSpec) { s.Affinity = zoneAffinity([]string{"b", "d"}) })
	e.waitPlacement(t, ns, "web", map[string]int{"c": 2}, 60*time.Second)
	e.waitPlacement(t, ns, "far", map[string]int{"d": 1}, 60*time.Second)
	cordon(t, e.env, []string{"b-0", "b-1"}, false)
	kept := podsOn(t, e, ns, "app=web", "c")

	// (a) c's control-plane link cut: its kubelets fall silent, the data
	// plane still reaches it.
	cut := time.Now()
	e.sim.Stop("c-0")
	e.sim.Stop("c-1")
	e.waitPlacement(t, ns, "web", map[string]int{"b": 2, "c": 2}, nodeDownAfter+60*time.Second)
	added := time.Since(cut)
	d, err := e.c.AppsV1().Deployments(ns).Get(e.ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 4 || d.Annotations[rescheduler.AnnotationSurge] != `{"c-0":1,"c-1":1}` {
		t.Errorf("web: %d replicas, %s %q; want 4, one for each of c's nodes", *d.Spec.Replicas, rescheduler.AnnotationSurge, d.Annotations[rescheduler.AnnotationSurge])
	}
	for _, n := range []string{"c-0", "c-1"} {
		if !tainted(t, e, n) {
			t.Errorf("%s is not tainted %s while cut off", n, rescheduler.TaintNodeDown)
		}
	}
	// The pods in c stay, a node-down delay and more after they were
	// counted cut off: a verdict of dead would have deleted them at once.
	for deadline := time.Now().Add(nodeDownAfter); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got := podsOn(t, e, ns, "app=web", "c"); !slices.Equal(got, kept) {
			t.Fatalf("c's pods %v became %v %v after its control-plane link was cut", kept, got, time.Since(cut).Round(time.Second))
		}
		if _, ok := pl.store.RTT("a", "c"); !ok {
			t.Fatalf("a -> c went unknown %v after c's control-plane link was cut", time.Since(cut).Round(time.Second))
		}
	}
	if n := testutil.ToFloat64(lead.m.NodesCutOff); n != 2 {
		t.Errorf("ning_rescheduler_nodes_cut_off %v, want 2", n)
	}
	if n := lead.evictions(t, "node_down"); n != 0 {
		t.Errorf("%v pods deleted from cut-off nodes, want none", n)
	}
	waitNodeEvent(t, e, "c-0", rescheduler.ReasonNodeCutOff)
	// c heard again: the taint goes, the replicas added go.
	back := time.Now()
	for _, n := range []string{"c-0", "c-1"} {
		if err := e.sim.Resume(e.ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(ctx, t, 30*time.Second, "c back: untainted, web at 2 replicas", func() bool {
		d, err := e.c.AppsV1().Deployments(ns).Get(e.ctx, "web", metav1.GetOptions{})
		_, surged := d.Annotations[rescheduler.AnnotationSurge]
		return err == nil && *d.Spec.Replicas == 2 && !surged && !tainted(t, e, "c-0") && !tainted(t, e, "c-1")
	})
	waitUntil(ctx, t, 30*time.Second, "web at 2 Ready pods", func() bool {
		_, ready, total, err := e.placement(e.ctx, ns, "web")
		return err == nil && ready == 2 && total == 2
	})
	untilBack := time.Since(back)
	t.Logf("control-plane link of c cut: %d pods kept in c (%v), %d replicas added and Ready in b %.1f s after the cut (node down after %v); "+
		"after c was heard again, untainted and back to 2 replicas in %.1f s", len(kept), kept, *d.Spec.Replicas-2, added.Seconds(), nodeDownAfter, untilBack.Seconds())

	// (b) the whole of d lost: its kubelet and its link.
	lost := time.Now()
	e.sim.Stop("d-0")
	if err := pl.lab.SetLinks(ctx, "d", false); err != nil {
		t.Fatal(err)
	}
	e.waitPlacement(t, ns, "far", map[string]int{"b": 1}, nodeDownAfter+60*time.Second)
	recovered := time.Since(lost)
	t.Logf("site d lost: its pod replaced in b, Ready %.1f s after (node down after %v)", recovered.Seconds(), nodeDownAfter)
	if bound := nodeDownAfter + 15*time.Second; recovered > bound {
		t.Errorf("site d's pod replaced after %v, want within %v (the node-down delay and a few checks), as for a dead node", recovered.Round(time.Second), bound)
	}
	if n := lead.evictions(t, "node_down"); n != 1 {
		t.Errorf("%v pods deleted from down nodes, want 1 (far's)", n)
	}
	if n := testutil.ToFloat64(lead.m.NodeVerdicts.WithLabelValues("dead")); n != 1 {
		t.Errorf("%v nodes judged dead, want 1 (d-0)", n)
	}
	// d comes back (the lab's delayer is closed with its link up).
	if err := pl.lab.SetLinks(ctx, "d", true); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.Resume(e.ctx, "d-0"); err != nil {
		t.Fatal(err)
	}
	waitUntil(ctx, t, 30*time.Second, "d-0 untainted", func() bool { return !tainted(t, e, "d-0") })
}

// podsOn names the running pods matching selector in site, sorted.
func podsOn(t *testing.T, e *reschedEnv, ns, selector, site string) []string {
	t.Helper()
	pods, err := e.c.CoreV1().Pods(ns).List(e.ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && e.site[p.Spec.NodeName] == site {
			out = append(out, p.Name)
		}
	}
	slices.Sort(out)
	return out
}

// tainted reports whether the node carries rescheduler.TaintNodeDown.
func tainted(t *testing.T, e *reschedEnv, node string) bool {
	t.Helper()
	n, err := e.c.CoreV1().Nodes().Get(e.ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range n.Spec.Taints {
		if tn.Key == rescheduler.TaintNodeDown {
			return true
		}
	}
	return false
}

// waitNodeEvent waits for an Event with reason on the node.
func waitNodeEvent(t *testing.T, e *reschedEnv, node, reason string) {
	t.Helper()
	waitUntil(e.ctx, t, 30*time.Second, "Event "+reason+" on "+node, func() bool {
		evs, err := e.c.CoreV1().Events("").List(e.ctx, metav1.ListOptions{FieldSelector: "reason=" + reason + ",involvedObject.name=" + node})
		return err == nil && len(evs.Items) > 0
	})
}
