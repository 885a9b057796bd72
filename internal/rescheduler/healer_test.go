package rescheduler

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
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
}

func actions(as []nodeAction) []healed {
	out := []healed{}
	for _, a := range as {
		h := healed{Node: a.node.Name, Down: a.down, Taint: a.taint}
		for _, d := range a.deletes {
			h.Delete = append(h.Delete, d.pod.Name)
			h.Force = append(h.Force, d.force)
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
			advance: after, want: []healed{{Node: "n1", Down: true, Taint: true, Delete: []string{"rs-0"}, Force: []bool{true}}}},
		{name: "StatefulSet pods too with AllowStatefulSetForce", nodes: four(nil), silent: []string{"n1"},
			edit:    func(c *Config) { c.AllowStatefulSetForce = true },
			advance: after, want: []healed{{Node: "n1", Down: true, Taint: true, Delete: []string{"rs-0", "sts-0"}, Force: []bool{true, true}}}},
		{name: "Ready False for NodeDownAfter: down, reachable, graceful deletion",
			nodes: four(func(name string, b *nodeBuilder) {
				if name == "n1" {
					b.ready(v1.ConditionFalse, t0)
				}
			}),
			advance: after, want: []healed{{Node: "n1", Down: true, Taint: true, Delete: []string{"rs-0"}, Force: []bool{false}}}},
		{name: "already tainted: not tainted again, pods still deleted", nodes: four(func(name string, b *nodeBuilder) {
			if name == "n1" {
				b.downTaint()
			}
		}), silent: []string{"n1"},
			advance: after, want: []healed{{Node: "n1", Down: true, Delete: []string{"rs-0"}, Force: []bool{true}}}},
		{name: "a tainted node that is healthy is back", nodes: four(func(name string, b *nodeBuilder) {
			if name == "n2" {
				b.downTaint()
			}
		}), advance: time.Second, want: []healed{{Node: "n2", Taint: true}}},
		{name: "mass-down guard: more than MaxDownFraction down deletes nothing", nodes: four(nil), silent: []string{"n1", "n2", "n3"},
			advance: after, want: []healed{}, decision: "mass_node_down"},
		{name: "exactly MaxDownFraction down still acts", nodes: four(nil), silent: []string{"n1", "n3"},
			advance: after, want: []healed{{Node: "n1", Down: true, Taint: true, Delete: []string{"rs-0"}, Force: []bool{true}}, {Node: "n3", Down: true, Taint: true}}},
		{name: "stale-view guard: no Lease renewal seen anywhere judges no node", nodes: four(nil), silent: []string{"n1", "n2", "n3", "n4"},
			noLeaseEvents: true, edit: func(c *Config) { c.MaxDownFraction = 1 }, advance: after, want: []healed{}, decision: "stale_view"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(t0)
			cfg := DefaultConfig()
			if tt.edit != nil {
				tt.edit(&cfg)
			}
			m := testMetrics(t)
			h := newHealer(cfg, nil, m, discard(), clk, nil)
			renew := map[string]time.Time{}
			for _, n := range tt.nodes {
				renew[n.Name] = t0
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
						renew[name] = clk.Now()
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
