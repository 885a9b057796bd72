package rescheduler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
)

// decided is what one mover cycle proposed: pod, reason, and the decision
// counters that moved.
type decided struct {
	Evict  []string // pod names
	Reason []string
}

func proposals(ps []proposal) decided {
	d := decided{Evict: []string{}, Reason: []string{}}
	for _, p := range ps {
		d.Evict = append(d.Evict, p.pod.Name)
		d.Reason = append(d.Reason, p.reason)
	}
	return d
}

func threeNodes() []*v1.Node {
	return []*v1.Node{makeNode("a-0", "a").obj(), makeNode("b-0", "b").obj(), makeNode("c-0", "c").obj()}
}

// web is a ReplicaSet's pods, all on node.
func web(node string, n int, edit ...func(*podBuilder)) []*v1.Pod {
	var out []*v1.Pod
	for i := 0; i < n; i++ {
		b := makePod("web-"+string(rune('0'+i))).on(node).owner("ReplicaSet", "web")
		for _, e := range edit {
			e(b)
		}
		out = append(out, b.obj())
	}
	return out
}

func TestMoverDecide(t *testing.T) {
	toC := map[string]float64{"c": 100}
	tests := []struct {
		name    string
		traffic map[string]float64
		// rtt, when set, replaces the line's RTTs.
		rtt    map[[2]string]float64
		nodes  []*v1.Node
		pods   []*v1.Pod
		edit   func(*Config)
		cycles int
		// want is the last cycle's proposals; decision a counter that must
		// have moved.
		want     decided
		decision string
	}{
		{name: "a gain held for fewer than HoldCycles waits", traffic: toC, nodes: threeNodes(), pods: web("a-0", 3),
			cycles: 2, want: decided{Evict: []string{}, Reason: []string{}}, decision: "holding"},
		{name: "a gain held for HoldCycles moves the newest pod toward the traffic", traffic: toC, nodes: threeNodes(), pods: web("a-0", 3),
			cycles: 3, want: decided{Evict: []string{"web-2"}, Reason: []string{ReasonReschedule}}},
		{name: "HoldCycles 1 acts at once", traffic: toC, nodes: threeNodes(), pods: web("a-0", 3), edit: func(c *Config) { c.HoldCycles = 1 },
			cycles: 1, want: decided{Evict: []string{"web-2"}, Reason: []string{ReasonReschedule}}},
		{name: "already at the traffic: below threshold", traffic: map[string]float64{"a": 100}, nodes: threeNodes(), pods: web("a-0", 3),
			cycles: 3, want: decided{Evict: []string{}, Reason: []string{}}, decision: "below_threshold"},
		{name: "a gain under MinGainMs holds back", traffic: map[string]float64{"a": 99, "c": 1}, nodes: threeNodes(), pods: web("a-0", 2),
			cycles: 3, want: decided{Evict: []string{}, Reason: []string{}}, decision: "below_threshold"},
		{name: "a gain under the relative threshold holds back", traffic: map[string]float64{"b": 50, "c": 50}, nodes: threeNodes(), pods: web("b-0", 1),
			edit: func(c *Config) { c.Threshold = 0.99 }, cycles: 3, want: decided{Evict: []string{}, Reason: []string{}}, decision: "below_threshold"},
		{name: "no traffic anywhere", nodes: threeNodes(), pods: web("a-0", 3),
			cycles: 3, want: decided{Evict: []string{}, Reason: []string{}}, decision: "no_traffic"},
		{name: "a pod not Ready: the workload is unsettled", traffic: toC, nodes: threeNodes(),
			pods:   append(web("a-0", 2), makePod("web-9").on("a-0").owner("ReplicaSet", "web").notReady().obj()),
			cycles: 3, want: decided{Evict: []string{}, Reason: []string{}}, decision: "settling"},
		{name: "a bare pod is never moved", traffic: toC, nodes: threeNodes(), pods: []*v1.Pod{makePod("solo").on("a-0").obj()},
			cycles: 3, want: decided{Evict: []string{}, Reason: []string{}}},
		{name: "another scheduler's pods are left alone", traffic: toC, nodes: threeNodes(),
			pods:   web("a-0", 3, func(b *podBuilder) { b.p.Spec.SchedulerName = "default-scheduler" }),
			cycles: 3, want: decided{Evict: []string{}, Reason: []string{}}},
		{name: "a measured delay violation held for HoldCycles evicts", traffic: map[string]float64{"a": 100}, nodes: threeNodes(),
			pods:   web("c-0", 2, func(b *podBuilder) { b.label("delay_a", "30") }),
			cycles: 3, want: decided{Evict: []string{"web-0"}, Reason: []string{ReasonDelayViolation}}},
		{name: "a delay violation with no compliant site elsewhere stays", traffic: map[string]float64{"a": 100},
			nodes:  []*v1.Node{makeNode("a-0", "a").ready(v1.ConditionFalse, t0).obj(), makeNode("b-0", "b").obj(), makeNode("c-0", "c").obj()},
			pods:   web("c-0", 2, func(b *podBuilder) { b.label("delay_a", "5") }),
			cycles: 3, want: decided{Evict: []string{}, Reason: []string{}}, decision: "no_compliant_site"},
		// The copies disagreed here: the rescheduler used to treat a
		// <from> it could not find as no constraint, and could evict a pod
		// whose replacement the scheduler then leaves pending.
		{name: "an unresolved <from>: the scheduler could place no replacement, so nothing moves", traffic: toC, nodes: threeNodes(),
			pods:   web("a-0", 3, func(b *podBuilder) { b.label("delay_ghost", "50") }),
			cycles: 3, want: decided{Evict: []string{}, Reason: []string{}}, decision: "delay_from_unresolved"},
		{name: "a <from> pod that is not bound yet is unresolved", traffic: toC, nodes: threeNodes(),
			pods: append(web("a-0", 3, func(b *podBuilder) { b.label("delay_db", "50") }),
				makePod("db").obj()),
			cycles: 3, want: decided{Evict: []string{}, Reason: []string{}}, decision: "delay_from_unresolved"},
		{name: "a <from> pod resolves to its node's site", traffic: toC, nodes: threeNodes(),
			pods: append(web("a-0", 3, func(b *podBuilder) { b.label("delay_db", "25") }),
				makePod("db").on("b-0").obj()),
			cycles: 3, want: decided{Evict: []string{"web-2"}, Reason: []string{ReasonReschedule}}},
		{name: "malformed delay labels: nothing moves", traffic: toC, nodes: threeNodes(),
			pods:   web("a-0", 3, func(b *podBuilder) { b.label("delay_b", "soon") }),
			cycles: 3, want: decided{Evict: []string{}, Reason: []string{}}},
		{name: "no schedulable node where the traffic is: the next best site", traffic: toC,
			nodes:  []*v1.Node{makeNode("a-0", "a").obj(), makeNode("b-0", "b").obj(), makeNode("c-0", "c").ready(v1.ConditionFalse, t0).obj()},
			pods:   web("a-0", 3),
			cycles: 3, want: decided{Evict: []string{"web-2"}, Reason: []string{ReasonReschedule}}},
		// The target is checked with kube-scheduler's own filters before
		// an eviction: a replacement that cannot be placed there is a loss.
		{name: "the target site's only node lacks the CPU for a replacement: nothing moves", traffic: toC,
			nodes:  []*v1.Node{makeNode("a-0", "a").obj(), makeNode("b-0", "b").obj(), makeNode("c-0", "c").cpu("500m").obj()},
			pods:   web("a-0", 3, func(b *podBuilder) { b.requestCPU("1") }),
			cycles: 3, want: decided{Evict: []string{}, Reason: []string{}}, decision: "target_unfit"},
		{name: "the target site's node has just the CPU for a replacement: the move happens", traffic: toC,
			nodes:  []*v1.Node{makeNode("a-0", "a").obj(), makeNode("b-0", "b").obj(), makeNode("c-0", "c").cpu("1").obj()},
			pods:   web("a-0", 3, func(b *podBuilder) { b.requestCPU("1") }),
			cycles: 3, want: decided{Evict: []string{"web-2"}, Reason: []string{ReasonReschedule}}},
		{name: "the target site's node is full with others' pods: nothing moves", traffic: toC,
			nodes:  []*v1.Node{makeNode("a-0", "a").obj(), makeNode("b-0", "b").obj(), makeNode("c-0", "c").cpu("2").obj()},
			pods:   append(web("a-0", 3, func(b *podBuilder) { b.requestCPU("1") }), makePod("db").on("c-0").requestCPU("1500m").obj()),
			cycles: 3, want: decided{Evict: []string{}, Reason: []string{}}, decision: "target_unfit"},
		{name: "a delay violation whose compliant sites have no room for a replacement stays", traffic: map[string]float64{"a": 100},
			nodes:  []*v1.Node{makeNode("a-0", "a").cpu("500m").obj(), makeNode("b-0", "b").cpu("500m").obj(), makeNode("c-0", "c").obj()},
			pods:   web("c-0", 2, func(b *podBuilder) { b.label("delay_a", "30").requestCPU("1") }),
			cycles: 3, want: decided{Evict: []string{}, Reason: []string{}}, decision: "target_unfit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(t0)
			cfg := DefaultConfig()
			if tt.edit != nil {
				tt.edit(&cfg)
			}
			m := testMetrics(t)
			mv := newMover(cfg, lineStore(t, clk, tt.traffic, tt.rtt), m, discard(), clk)
			var got []proposal
			for i := 0; i < tt.cycles; i++ {
				got = mv.decide(context.Background(), newView(tt.nodes, tt.pods, mv.store, cfg.SiteLabel), workloads(tt.pods, cfg.SchedulerName))
				clk.Step(cfg.Interval)
			}
			if diff := cmp.Diff(tt.want, proposals(got)); diff != "" {
				t.Errorf("proposals (-want +got):\n%s", diff)
			}
			if tt.decision != "" && testutil.ToFloat64(m.Decisions.WithLabelValues(tt.decision)) == 0 {
				t.Errorf("decision %q was never counted", tt.decision)
			}
		})
	}
}

// TestMoverHonoursUnknownRTT: the rescheduler predicts the scheduler's
// choice under NetworkLatency's unknownRTT, instead of always failing closed.
// web's pods must stay within 50 ms of site a; the RTT a-c is unknown and
// the traffic is at c.
func TestMoverHonoursUnknownRTT(t *testing.T) {
	rtt := map[[2]string]float64{{"a", "b"}: 20, {"b", "c"}: 20}
	tests := []struct {
		policy configv1alpha1.UnknownRTTPolicy
		// want is the site the evicted pod's replacement is expected in.
		want string
	}{
		{configv1alpha1.FailClosed, "b"},
		{configv1alpha1.FailOpen, "c"},
	}
	for _, tt := range tests {
		t.Run(string(tt.policy), func(t *testing.T) {
			clk := clocktesting.NewFakeClock(t0)
			cfg := DefaultConfig()
			cfg.HoldCycles, cfg.UnknownRTT = 1, tt.policy
			mv := newMover(cfg, lineStore(t, clk, map[string]float64{"c": 100}, rtt), testMetrics(t), discard(), clk)
			pods := web("a-0", 2, func(b *podBuilder) { b.label("delay_a", "50") })
			v := newView(threeNodes(), pods, mv.store, cfg.SiteLabel)
			got := mv.decide(context.Background(), v, workloads(pods, cfg.SchedulerName))
			if len(got) != 1 {
				t.Fatalf("got %d proposals, want 1", len(got))
			}
			if want := "toward " + tt.want; !strings.Contains(got[0].msg, want) {
				t.Errorf("message %q: want it to say %q", got[0].msg, want)
			}
		})
	}
}

// TestMoverWeightedRTTGauge: the weighted-RTT gauge shows each placement's
// traffic-weighted mean RTT, and no series at all while the placement's
// traffic crosses a link of unknown RTT (it used to show the planner's
// penalty, 100000 ms). web's 3 pods are in a, the traffic at c.
func TestMoverWeightedRTTGauge(t *testing.T) {
	tests := []struct {
		name     string
		rtt      map[[2]string]float64
		notReady bool               // one more pod, not Ready: the workload is settling
		want     map[string]float64 // placement -> ms; absent: no series
	}{
		{"every RTT known", nil, false, map[string]float64{"actual": 40, "planned": 0}},
		{"a-c unknown", map[[2]string]float64{{"a", "b"}: 20, {"b", "c"}: 20}, false, map[string]float64{"planned": 0}},
		{"settling: the placement as it runs, no plan", nil, true, map[string]float64{"actual": 40}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(t0)
			cfg := DefaultConfig()
			m := testMetrics(t)
			mv := newMover(cfg, lineStore(t, clk, map[string]float64{"c": 100}, tt.rtt), m, discard(), clk)
			pods := web("a-0", 3)
			if tt.notReady {
				pods = append(pods, makePod("web-9").on("a-0").owner("ReplicaSet", "web").notReady().obj())
			}
			mv.decide(context.Background(), newView(threeNodes(), pods, mv.store, cfg.SiteLabel), workloads(pods, cfg.SchedulerName))
			got := map[string]float64{}
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(m.WeightedRTT)
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				for _, mt := range mf.GetMetric() {
					for _, l := range mt.GetLabel() {
						if l.GetName() == "placement" {
							got[l.GetValue()] = mt.GetGauge().GetValue()
						}
					}
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ning_rescheduler_weighted_rtt_milliseconds by placement (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMoverCloudFallback: the scheduler's CloudFallback score puts a pod on
// a cloud node only when no edge node fits, so the rescheduler plans and
// moves over the edge sites while one can take the pod. The lab found the
// copy missing: with the traffic at the cloud site the rescheduler evicted
// a pod "toward cloud" every cycle, and every replacement landed on an edge
// site again. Sites a-b-c on a line (20 ms a hop), traffic at c.
func TestMoverCloudFallback(t *testing.T) {
	ready := func(name, site string) *nodeBuilder { return makeNode(name, site) }
	tests := []struct {
		name  string
		nodes []*v1.Node
		pods  []*v1.Pod
		// want is the site the replacement is expected in ("delay": a
		// delay violation's repair); "" no move.
		want     string
		decision string
	}{
		{name: "a cloud site with the traffic: the replica moves to the nearest edge site",
			nodes: []*v1.Node{ready("a-0", "a").obj(), ready("b-0", "b").obj(), ready("c-0", "c").cloud().obj()},
			pods:  web("a-0", 2), want: "b"},
		{name: "already on the edge site nearest the cloud traffic: nothing moves",
			nodes: []*v1.Node{ready("a-0", "a").obj(), ready("b-0", "b").obj(), ready("c-0", "c").cloud().obj()},
			pods:  web("b-0", 2), decision: "below_threshold"},
		{name: "an edge node schedulable but the cloud nearer: nothing moves",
			nodes: []*v1.Node{ready("a-0", "a").obj(), ready("b-0", "b").ready(v1.ConditionFalse, t0).obj(), ready("c-0", "c").cloud().obj()},
			pods:  web("a-0", 2), decision: "below_threshold"},
		// delay_c 30 rules out a (40 ms from c); b is not Ready: only the
		// cloud site can take the pod, so the violation is repaired there.
		{name: "no edge site fits: the cloud site takes the replacement",
			nodes: []*v1.Node{ready("a-0", "a").obj(), ready("b-0", "b").ready(v1.ConditionFalse, t0).obj(), ready("c-0", "c").cloud().obj()},
			pods:  web("a-0", 2, func(b *podBuilder) { b.label("delay_c", "30") }), want: "delay"},
		{name: "a site with an edge and a cloud node counts as edge",
			nodes: []*v1.Node{ready("a-0", "a").obj(), ready("b-0", "b").obj(), ready("c-0", "c").cloud().obj(), ready("c-1", "c").obj()},
			pods:  web("a-0", 2), want: "c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(t0)
			cfg := DefaultConfig()
			cfg.HoldCycles = 1
			m := testMetrics(t)
			mv := newMover(cfg, lineStore(t, clk, map[string]float64{"c": 100}, nil), m, discard(), clk)
			got := mv.decide(context.Background(), newView(tt.nodes, tt.pods, mv.store, cfg.SiteLabel), workloads(tt.pods, cfg.SchedulerName))
			switch {
			case tt.want == "" && len(got) != 0:
				t.Errorf("proposed %s, want no move", got[0].msg)
			case tt.want != "" && len(got) != 1:
				t.Fatalf("got %d proposals, want a move toward %s", len(got), tt.want)
			case tt.want == "delay" && got[0].reason != ReasonDelayViolation:
				t.Errorf("proposed %s (%s), want the delay violation repaired", got[0].msg, got[0].reason)
			case tt.want != "delay" && tt.want != "" && !strings.Contains(got[0].msg, "toward "+tt.want+" ("):
				t.Errorf("message %q: want a move toward %s", got[0].msg, tt.want)
			}
			if tt.decision != "" && testutil.ToFloat64(m.Decisions.WithLabelValues(tt.decision)) == 0 {
				t.Errorf("decision %q was never counted", tt.decision)
			}
		})
	}
}

// TestMoverSettles: after an eviction the workload waits for its
// replacement to be Ready, or for SettleTimeout, before the next.
func TestMoverSettles(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	cfg := DefaultConfig()
	cfg.HoldCycles = 1
	mv := newMover(cfg, lineStore(t, clk, map[string]float64{"c": 100}, nil), testMetrics(t), discard(), clk)
	nodes := threeNodes()
	decide := func(pods []*v1.Pod) []string {
		return proposals(mv.decide(context.Background(), newView(nodes, pods, mv.store, cfg.SiteLabel), workloads(pods, cfg.SchedulerName))).Evict
	}
	pods := web("a-0", 3)
	got := mv.decide(context.Background(), newView(nodes, pods, mv.store, cfg.SiteLabel), workloads(pods, cfg.SchedulerName))
	if len(got) != 1 {
		t.Fatalf("first cycle: %d proposals, want 1", len(got))
	}
	// The evictor evicted it: the mover awaits 3 Ready pods again.
	mv.settling[got[0].w.uid] = settle{at: clk.Now(), readyAfter: got[0].ready}
	two := pods[:2]
	steps := []struct {
		name    string
		advance time.Duration
		pods    []*v1.Pod
		want    []string
	}{
		{"replacement not there yet", cfg.Interval, two, []string{}},
		{"still not, within the timeout", cfg.SettleTimeout / 2, two, []string{}},
		{"replacement Ready: act again", 0, append(append([]*v1.Pod(nil), two...), makePod("web-7").on("a-0").owner("ReplicaSet", "web").obj()), []string{"web-7"}},
	}
	for _, s := range steps {
		clk.Step(s.advance)
		if diff := cmp.Diff(s.want, decide(s.pods)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", s.name, diff)
		}
	}
	// A replacement that never becomes Ready holds the workload only for
	// SettleTimeout.
	mv.settling[got[0].w.uid] = settle{at: clk.Now(), readyAfter: 3}
	clk.Step(cfg.SettleTimeout + time.Second)
	if diff := cmp.Diff([]string{"web-1"}, decide(two)); diff != "" {
		t.Errorf("after the settle timeout (-want +got):\n%s", diff)
	}
}

// TestMoverNewTermStartsAfresh: a replica that takes over the lease builds
// a new Rescheduler (cli and rescheduler.Lead), and nothing the last term
// counted carries over: its holds start from zero.
func TestMoverNewTermStartsAfresh(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	cfg := DefaultConfig()
	store := lineStore(t, clk, map[string]float64{"c": 100}, nil)
	pods := web("a-0", 3)
	run := func(mv *mover, cycles int) int {
		n := 0
		for i := 0; i < cycles; i++ {
			n = len(mv.decide(context.Background(), newView(threeNodes(), pods, store, cfg.SiteLabel), workloads(pods, cfg.SchedulerName)))
			clk.Step(cfg.Interval)
		}
		return n
	}
	if n := run(newMover(cfg, store, testMetrics(t), discard(), clk), cfg.HoldCycles-1); n != 0 {
		t.Fatalf("old term proposed %d evictions before HoldCycles", n)
	}
	next := newMover(cfg, store, testMetrics(t), discard(), clk)
	if n := run(next, 1); n != 0 {
		t.Fatalf("new term proposed an eviction on its first cycle: the old term's holds carried over")
	}
	if n := run(next, cfg.HoldCycles-1); n != 1 {
		t.Fatalf("new term: %d proposals after HoldCycles, want 1", n)
	}
}
