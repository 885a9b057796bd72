package rescheduler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
)

// healed is what one healer check decided, per node: Taint is a change of
// the taint (added when Down, removed when not).
type healed struct {
	Node   string
	Down   bool
	Taint  bool
	Delete []string // pod names
	Force  []bool
	// NotRescued are the pods newly reported left on the down node.
	NotRescued []string
}

func actions(as []nodeAction) []healed {
	out := []healed{}
	for _, a := range as {
		h := healed{Node: a.node.Name, Down: a.down, Taint: a.taint}
		for _, d := range a.deletes {
			h.Delete = append(h.Delete, d.pod.Name)
			h.Force = append(h.Force, d.force)
		}
		for _, u := range a.unrescued {
			h.NotRescued = append(h.NotRescued, u.pod.Name)
		}
		out = append(out, h)
	}
	return out
}

func TestHealerDecide(t *testing.T) {
	after := DefaultConfig().NodeDownAfter
	// Four nodes; the Leases of all are renewed at t0 unless a case says.
	four := func(edit func(name string, b *nodeBuilder)) []*v1.Node {
		var out []*v1.Node
		for _, name := range []string{"n1", "n2", "n3", "n4"} {
			b := makeNode(name, name)
			if edit != nil {
				edit(name, b)
			}
			out = append(out, b.obj())
		}
		return out
	}
	onN1 := []*v1.Pod{
		makePod("rs-0").on("n1").owner("ReplicaSet", "web").obj(),
		makePod("sts-0").on("n1").owner("StatefulSet", "db").obj(),
		makePod("bare").on("n1").obj(),
		makePod("other").on("n1").owner("ReplicaSet", "x").obj(),
		makePod("rs-1").on("n2").owner("ReplicaSet", "web").obj(),
	}
	onN1[3].Spec.SchedulerName = "default-scheduler"
	tests := []struct {
		name  string
		nodes []*v1.Node
		// silent are the nodes whose Lease stops being renewed after t0.
		silent []string
		// noLeaseEvents: the lease cache stops seeing any renewal.
		noLeaseEvents bool
		edit          func(*Config)
		advance       time.Duration
		want          []healed
		decision      string
	}{
		{name: "all renewing: nothing to do", nodes: four(nil), advance: 2 * after, want: []healed{}},
		{name: "silent for less than NodeDownAfter: not down yet", nodes: four(nil), silent: []string{"n1"},
			advance: after - time.Second, want: []healed{}},
		{name: "silent for NodeDownAfter: tainted, its ReplicaSet pods force-deleted", nodes: four(nil), silent: []string{"n1"},
			advance: after, want: []healed{{Node: "n1", Down: true, Taint: true, Delete: []string{"rs-0"}, Force: []bool{true}, NotRescued: []string{"sts-0", "bare"}}}},
		{name: "StatefulSet pods too with AllowStatefulSetForce", nodes: four(nil), silent: []string{"n1"},
			edit:    func(c *Config) { c.AllowStatefulSetForce = true },
			advance: after, want: []healed{{Node: "n1", Down: true, Taint: true, Delete: []string{"rs-0", "sts-0"}, Force: []bool{true, true}, NotRescued: []string{"bare"}}}},
		{name: "Ready False for NodeDownAfter: down, reachable, graceful deletion",
			nodes: four(func(name string, b *nodeBuilder) {
				if name == "n1" {
					b.ready(v1.ConditionFalse, t0)
				}
			}),
			advance: after, want: []healed{{Node: "n1", Down: true, Taint: true, Delete: []string{"rs-0"}, Force: []bool{false}, NotRescued: []string{"sts-0", "bare"}}}},
		{name: "already tainted and silent: not tainted again, pods deleted once the silence is confirmed", nodes: four(func(name string, b *nodeBuilder) {
			if name == "n1" {
				b.downTaint()
			}
		}), silent: []string{"n1"},
			advance: after, want: []healed{{Node: "n1", Down: true, Delete: []string{"rs-0"}, Force: []bool{true}, NotRescued: []string{"sts-0", "bare"}}}},
		{name: "a tainted node that is healthy is back", nodes: four(func(name string, b *nodeBuilder) {
			if name == "n2" {
				b.downTaint()
			}
		}), advance: time.Second, want: []healed{{Node: "n2", Taint: true}}},
		{name: "mass-down guard: more than MaxDownFraction down deletes nothing", nodes: four(nil), silent: []string{"n1", "n2", "n3"},
			advance: after, want: []healed{}, decision: "mass_node_down"},
		{name: "exactly MaxDownFraction down still acts", nodes: four(nil), silent: []string{"n1", "n3"},
			advance: after, want: []healed{{Node: "n1", Down: true, Taint: true, Delete: []string{"rs-0"}, Force: []bool{true}, NotRescued: []string{"sts-0", "bare"}}, {Node: "n3", Down: true, Taint: true}}},
		{name: "stale-view guard: no Lease renewal seen anywhere judges no node", nodes: four(nil), silent: []string{"n1", "n2", "n3", "n4"},
			noLeaseEvents: true, edit: func(c *Config) { c.MaxDownFraction = 1 }, advance: after, want: []healed{}, decision: "stale_view"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, m, clk := testHealer(t, tt.edit)
			renew := map[string]nodeLease{}
			for _, n := range tt.nodes {
				renew[n.Name] = nodeLease{renew: t0}
			}
			h.sawLease()
			h.decide(context.Background(), tt.nodes, renew, onN1) // first sight of every Lease
			// Renew every second, except the silent nodes'.
			silent := map[string]bool{}
			for _, n := range tt.silent {
				silent[n] = true
			}
			var got []nodeAction
			for step := time.Duration(0); step < tt.advance; {
				d := min(time.Second, tt.advance-step)
				clk.Step(d)
				step += d
				for name := range renew {
					if !silent[name] {
						renew[name] = nodeLease{renew: clk.Now()}
						if !tt.noLeaseEvents {
							h.sawLease()
						}
					}
				}
				if tt.noLeaseEvents {
					continue
				}
				got = h.decide(context.Background(), tt.nodes, renew, onN1)
			}
			if tt.noLeaseEvents {
				got = h.decide(context.Background(), tt.nodes, renew, onN1)
			}
			if diff := cmp.Diff(tt.want, actions(got)); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			if tt.decision != "" && testutil.ToFloat64(m.Decisions.WithLabelValues(tt.decision)) == 0 {
				t.Errorf("decision %q was never counted", tt.decision)
			}
		})
	}
}

// TestHealerDeletesOnce: a pod deleted from a down node is not deleted again
// at the next check, unless the deletion failed.
func TestHealerDeletesOnce(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	cfg := DefaultConfig()
	h := newHealer(cfg, nil, testMetrics(t), discard(), clk, nil)
	nodes := []*v1.Node{makeNode("n1", "a").ready(v1.ConditionFalse, t0).obj(), makeNode("n2", "b").obj(), makeNode("n3", "c").obj()}
	pods := []*v1.Pod{makePod("rs-0").on("n1").owner("ReplicaSet", "web").obj()}
	clk.Step(cfg.NodeDownAfter)
	h.sawLease()
	first := actions(h.decide(context.Background(), nodes, nil, pods))
	if diff := cmp.Diff([]healed{{Node: "n1", Down: true, Taint: true, Delete: []string{"rs-0"}, Force: []bool{false}}}, first); diff != "" {
		t.Fatalf("first check (-want +got):\n%s", diff)
	}
	if second := actions(h.decide(context.Background(), nodes, nil, pods)); len(second[0].Delete) != 0 {
		t.Fatalf("second check deleted %v again", second[0].Delete)
	}
	// The deletion failed: act forgets the pod, and the next check retries.
	h.mu.Lock()
	delete(h.handled, pods[0].UID)
	h.mu.Unlock()
	if third := actions(h.decide(context.Background(), nodes, nil, pods)); len(third[0].Delete) != 1 {
		t.Fatalf("after a failed deletion, the next check deleted %v, want rs-0", third[0].Delete)
	}
	// Once the pod is gone, the healer forgets it.
	h.decide(context.Background(), nodes, nil, nil)
	if len(h.handled) != 0 {
		t.Fatalf("handled = %v after the pod went", h.handled)
	}
}

func TestBudget(t *testing.T) {
	pod := func(ns, node string) *v1.Pod {
		p := makePod("p").on(node).obj()
		p.Namespace = ns
		return p
	}
	type try struct {
		ns, node, workload string
	}
	tests := []struct {
		name   string
		limits Limits
		tries  []try
		want   []bool
	}{
		{"total", Limits{Total: 2}, []try{{"a", "n1", "w1"}, {"b", "n2", "w2"}, {"c", "n3", "w3"}}, []bool{true, true, false}},
		{"per namespace", Limits{PerNamespace: 1}, []try{{"a", "n1", "w1"}, {"a", "n2", "w2"}, {"b", "n3", "w3"}}, []bool{true, false, true}},
		{"per node", Limits{PerNode: 1}, []try{{"a", "n1", "w1"}, {"b", "n1", "w2"}, {"c", "n2", "w3"}}, []bool{true, false, true}},
		{"per workload", Limits{PerWorkload: 1}, []try{{"a", "n1", "w1"}, {"b", "n2", "w1"}, {"c", "n3", "w2"}}, []bool{true, false, true}},
		{"no limits", Limits{}, []try{{"a", "n1", "w1"}, {"a", "n1", "w1"}}, []bool{true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := (&evictor{limits: tt.limits}).budget()
			var got []bool
			for _, tr := range tt.tries {
				p := pod(tr.ns, tr.node)
				ok := b.allows(p, typesUID(tr.workload))
				if ok {
					b.spend(p, typesUID(tr.workload))
				}
				got = append(got, ok)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("allowed (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHealerFreshView: a healer that has not seen the cluster before (a new
// leader's) takes each node's state from the cluster. A node that carries
// ning.io/node-down stays down until its Lease is seen renewed, and its pods
// are deleted once its silence is confirmed; an untainted node's silence is
// timed from its Lease's renew time, but this process must see at least a
// quarter of the Lease's duration of it (one kubelet renewal period), so that
// a kubelet whose clock lags is not taken down by the first look.
func TestHealerFreshView(t *testing.T) {
	after := DefaultConfig().NodeDownAfter // 20 s
	const lease = 40 * time.Second         // the kubelet's; it renews every 10 s
	pods := []*v1.Pod{
		makePod("rs-0").on("n1").owner("ReplicaSet", "web").obj(),
		makePod("rs-going").on("n1").owner("ReplicaSet", "web").terminating().obj(),
		makePod("sts-0").on("n1").owner("StatefulSet", "db").obj(),
		makePod("bare").on("n1").obj(),
	}
	type look struct {
		at    time.Duration // after the first look
		renew bool          // n1's Lease is renewed before this look
		want  []healed
	}
	nothing := []healed{}
	keptDown := []healed{{Node: "n1", Down: true}}
	deleted := func(taint, force bool) []healed {
		return []healed{{Node: "n1", Down: true, Taint: taint, Delete: []string{"rs-0"}, Force: []bool{force}, NotRescued: []string{"sts-0", "bare"}}}
	}
	tainted := t0.Add(-time.Minute)
	tests := []struct {
		name string
		n1   *nodeBuilder
		// renewed is n1's Lease's renew time, from the first look (and
		// how much its kubelet's clock is off, when it renews).
		renewed time.Duration
		looks   []look
	}{
		{name: "tainted, its Lease silent: kept down; its pods deleted a quarter Lease later, not twice",
			n1: makeNode("n1", "a").downTaintAt(tainted), renewed: -2 * time.Minute,
			looks: []look{{at: 0, want: keptDown}, {at: lease/4 - time.Second, want: keptDown}, {at: lease / 4, want: deleted(false, true)},
				{at: lease/4 + time.Second, want: keptDown}}},
		{name: "tainted, its Lease renewed after the first look: back",
			n1: makeNode("n1", "a").downTaintAt(tainted), renewed: -2 * time.Minute,
			looks: []look{{at: 0, want: keptDown}, {at: time.Second, renew: true, want: []healed{{Node: "n1", Taint: true}}}}},
		{name: "tainted and Ready False, its Lease renewing: kept down, its pods deleted gracefully once it is seen renewing",
			n1:    makeNode("n1", "a").ready(v1.ConditionFalse, tainted.Add(-after)).downTaintAt(tainted),
			looks: []look{{at: 0, want: keptDown}, {at: time.Second, renew: true, want: deleted(false, false)}}},
		{name: "untainted, renewed 5 s before the first look: down on time, 15 s after it",
			n1: makeNode("n1", "a"), renewed: -5 * time.Second,
			looks: []look{{at: 0, want: nothing}, {at: after - 5*time.Second - time.Second, want: nothing}, {at: after - 5*time.Second, want: deleted(true, true)}}},
		{name: "untainted, renewed an hour before the first look: down a quarter Lease after it, not at it",
			n1: makeNode("n1", "a"), renewed: -time.Hour,
			looks: []look{{at: 0, want: nothing}, {at: lease/4 - time.Second, want: nothing}, {at: lease / 4, want: deleted(true, true)}}},
		{name: "untainted, its kubelet's clock an hour behind, renewing: never down",
			n1: makeNode("n1", "a"), renewed: -time.Hour,
			looks: []look{{at: 0, want: nothing}, {at: lease/4 - time.Second, renew: true, want: nothing}, {at: lease/4 - 2*time.Second + after, want: nothing}}},
		{name: "untainted, its renew time ahead of this clock: timed from the first look",
			n1: makeNode("n1", "a"), renewed: time.Hour,
			looks: []look{{at: 0, want: nothing}, {at: after - time.Second, want: nothing}, {at: after, want: deleted(true, true)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(t0)
			h := newHealer(DefaultConfig(), nil, testMetrics(t), discard(), clk, nil)
			nodes := []*v1.Node{tt.n1.obj(), makeNode("n2", "b").obj(), makeNode("n3", "c").obj(), makeNode("n4", "d").obj()}
			n1 := t0.Add(tt.renewed)
			for i, l := range tt.looks {
				clk.SetTime(t0.Add(l.at))
				if l.renew {
					n1 = clk.Now().Add(tt.renewed)
				}
				leases := map[string]nodeLease{"n1": {renew: n1, duration: lease}}
				for _, n := range nodes[1:] {
					leases[n.Name] = nodeLease{renew: clk.Now(), duration: lease}
				}
				h.sawLease()
				if diff := cmp.Diff(l.want, actions(h.decide(context.Background(), nodes, leases, pods))); diff != "" {
					t.Errorf("look %d, %v after the first (-want +got):\n%s", i, l.at, diff)
				}
			}
		})
	}
}

// TestHealerNotRescued: each pod that ning leaves on a down node (a bare pod;
// a StatefulSet's without AllowStatefulSetForce) gets one Warning Event
// saying why, and is counted by reason. ReplicaSet pods are deleted instead;
// pods of other schedulers and of other controllers are not ning's to name.
func TestHealerNotRescued(t *testing.T) {
	after := DefaultConfig().NodeDownAfter
	pods := []*v1.Pod{
		makePod("rs-0").on("n1").owner("ReplicaSet", "web").obj(),
		makePod("sts-0").on("n1").owner("StatefulSet", "db").obj(),
		makePod("bare").on("n1").obj(),
		makePod("ds-0").on("n1").owner("DaemonSet", "agent").obj(),
		makePod("bare-elsewhere").on("n2").obj(),
	}
	other := makePod("not-ning").on("n1").obj()
	other.Spec.SchedulerName = "default-scheduler"
	pods = append(pods, other)
	why := "node n1 is down (Ready has been Unknown for 20s (NodeStatusUnknown))"
	bare := "Warning NingNotRescued " + why + ", but ning does not delete a bare pod: no controller would make it again. " +
		"Recreate it elsewhere, or give it a controller (a Deployment)"
	sts := "Warning NingNotRescued " + why + ", but ning does not force-delete StatefulSet db's pod without --allow-statefulset-force: " +
		"if the node is only cut off, the pod may still run beside a successor with its identity. It waits for the node, or for you to delete it"
	tests := []struct {
		name   string
		force  bool
		events []string
		counts map[string]float64
	}{
		{name: "defaults", events: []string{sts, bare}, counts: map[string]float64{"bare_pod": 1, "statefulset": 1}},
		{name: "AllowStatefulSetForce", force: true, events: []string{bare}, counts: map[string]float64{"bare_pod": 1, "statefulset": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(t0)
			cfg := DefaultConfig()
			cfg.AllowStatefulSetForce = tt.force
			cfg.DryRun = true // no apiserver here: act neither taints nor deletes
			m := testMetrics(t)
			rec := record.NewFakeRecorder(20)
			h := newHealer(cfg, nil, m, discard(), clk, rec)
			ev := &evictor{dryRun: true, m: m, log: discard(), recorder: rec}
			n1 := makeNode("n1", "a").ready(v1.ConditionUnknown, t0.Add(-after)).obj()
			n1.Status.Conditions[0].Reason = "NodeStatusUnknown"
			nodes := []*v1.Node{n1, makeNode("n2", "b").obj(), makeNode("n3", "c").obj()}
			var events []string
			for range 3 {
				h.sawLease()
				h.act(context.Background(), h.decide(context.Background(), nodes, nil, pods), ev)
				clk.Step(time.Second)
				for len(rec.Events) > 0 {
					if e := <-rec.Events; strings.Contains(e, ReasonNotRescued) {
						events = append(events, e)
					}
				}
			}
			if diff := cmp.Diff(tt.events, events); diff != "" {
				t.Errorf("Events over three checks (-want +got):\n%s", diff)
			}
			for reason, want := range tt.counts {
				if got := testutil.ToFloat64(m.NotRescued.WithLabelValues(reason)); got != want {
					t.Errorf("ning_rescheduler_pods_not_rescued_total{reason=%q} = %v, want %v", reason, got, want)
				}
			}
		})
	}
}
