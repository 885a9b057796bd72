package policy

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/placement"
)

// cluster is a Locator over plain maps: the policy is pure, and its
// adapters (siteindex, the extender, the rescheduler's view) are tested
// against real informers elsewhere.
type cluster struct {
	nodeSite map[string]string
	podNode  map[string]string // "namespace/name" -> node ("" unbound)
}

func (c cluster) SiteOfNode(n string) (string, bool) { s, ok := c.nodeSite[n]; return s, ok }
func (c cluster) HasSite(site string) bool {
	for _, s := range c.nodeSite {
		if s == site {
			return true
		}
	}
	return false
}
func (c cluster) NodeOfPod(ns, name string) (string, bool) {
	n, ok := c.podNode[ns+"/"+name]
	return n, ok
}

func TestResolveFrom(t *testing.T) {
	c := cluster{
		nodeSite: map[string]string{"a-0": "a", "b-0": "b", "x": "c"},
		podNode:  map[string]string{"default/db": "b-0", "default/new": "", "default/lost": "gone-0", "default/a": "b-0"},
	}
	tests := []struct {
		from, want, err string
	}{
		{from: "a-0", want: "a"},
		{from: "b", want: "b"},
		{from: "db", want: "b"},
		// A node of that name wins over a site of that name, and a site
		// over a pod.
		{from: "x", want: "c"},
		{from: "a", want: "a"},
		{from: "ghost", err: "delay_ghost 10ms: no node, site or pod named ghost"},
		{from: "new", err: "delay_new 10ms: pod default/new is not on a node yet"},
		{from: "lost", err: "delay_lost 10ms: pod default/lost runs on node gone-0, which is not known"},
	}
	for _, tt := range tests {
		t.Run(tt.from, func(t *testing.T) {
			c0 := placement.Constraint{Label: "delay_" + tt.from, From: tt.from, MaxMs: 10}
			got, err := ResolveFrom(c0, "default", c)
			var ue *UnresolvedError
			switch {
			case tt.err != "" && (err == nil || err.Error() != tt.err || !errors.As(err, &ue)):
				t.Fatalf("err = %v, want *UnresolvedError %q", err, tt.err)
			case tt.err == "" && err != nil:
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("site = %q, want %q", got, tt.want)
			}
		})
	}
}

type rtts map[[2]string]float64

func (r rtts) RTT(a, b string) (float64, bool) {
	if a == b {
		return 0, true
	}
	if v, ok := r[[2]string{a, b}]; ok {
		return v, true
	}
	v, ok := r[[2]string{b, a}]
	return v, ok
}

func TestJudgeSitesAndFailOpen(t *testing.T) {
	rtt := rtts{{"a", "b"}: 10, {"a", "c"}: 40}
	cs := []placement.Resolved{{Constraint: placement.Constraint{Label: "delay_a", From: "a", MaxMs: 35}, FromSite: "a"}}
	tests := []struct {
		name        string
		sites       []string
		policy      placement.UnknownRTTPolicy
		unknownOnly []string
		canFailOpen bool
	}{
		{"a measured breach at c: no failing open", []string{"a", "b", "c", "d"}, placement.FailClosed, []string{"d"}, false},
		{"only unknown RTTs reject: fail open", []string{"d", "a", "e", "d"}, placement.FailClosed, []string{"d", "e"}, true},
		{"FailOpen judges unknown RTTs as met", []string{"a", "d"}, placement.FailOpen, nil, false},
		{"nothing rejected", []string{"a", "b"}, placement.FailClosed, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := JudgeSites(cs, tt.sites, rtt, tt.policy)
			if diff := cmp.Diff(tt.unknownOnly, j.UnknownOnly); diff != "" {
				t.Errorf("unknown only (-want +got):\n%s", diff)
			}
			if got := j.CanFailOpen(); got != tt.canFailOpen {
				t.Errorf("CanFailOpen = %v, want %v", got, tt.canFailOpen)
			}
			if tt.canFailOpen {
				j.FailOpen()
				for _, s := range tt.sites {
					if !j.Verdicts[s].OK {
						t.Errorf("after FailOpen, %s is still rejected: %+v", s, j.Verdicts[s])
					}
				}
			}
		})
	}
}

func TestFailOpenLatch(t *testing.T) {
	var l FailOpenLatch
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		at         time.Duration
		latch      bool
		wantLatch  bool
		wantPolicy placement.UnknownRTTPolicy
	}{
		{at: 0, wantPolicy: placement.FailClosed},
		{at: 0, latch: true, wantLatch: true, wantPolicy: placement.FailOpen},
		{at: time.Minute, latch: true, wantLatch: false, wantPolicy: placement.FailOpen},
		{at: FailOpenFor, wantPolicy: placement.FailOpen},
		{at: FailOpenFor + time.Nanosecond, wantPolicy: placement.FailClosed},
		{at: FailOpenFor + time.Second, latch: true, wantLatch: true, wantPolicy: placement.FailOpen},
	}
	for i, s := range steps {
		now := t0.Add(s.at)
		if s.latch {
			if got := l.Latch("p", now); got != s.wantLatch {
				t.Errorf("step %d: Latch = %v, want %v", i, got, s.wantLatch)
			}
		}
		if got := l.Policy("p", placement.FailClosed, now); got != s.wantPolicy {
			t.Errorf("step %d: Policy = %v, want %v", i, got, s.wantPolicy)
		}
	}
}

func TestWorkloadOf(t *testing.T) {
	ref := func(kind string, controller bool) metav1.OwnerReference {
		return metav1.OwnerReference{Kind: kind, Name: "w", UID: "uid-w", Controller: ptr.To(controller)}
	}
	tests := []struct {
		name     string
		owners   []metav1.OwnerReference
		want     Workload
		replaced bool
	}{
		{"bare pod", nil, Workload{UID: "uid-p", Kind: "Pod", Name: "p"}, false},
		{"ReplicaSet", []metav1.OwnerReference{ref("ReplicaSet", true)}, Workload{UID: "uid-w", Kind: "ReplicaSet", Name: "w"}, true},
		{"StatefulSet", []metav1.OwnerReference{ref("StatefulSet", true)}, Workload{UID: "uid-w", Kind: "StatefulSet", Name: "w"}, true},
		{"DaemonSet is not moved", []metav1.OwnerReference{ref("DaemonSet", true)}, Workload{UID: "uid-w", Kind: "DaemonSet", Name: "w"}, false},
		{"an owner that is not the controller", []metav1.OwnerReference{ref("ReplicaSet", false)}, Workload{UID: "uid-p", Kind: "Pod", Name: "p"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "uid-p", OwnerReferences: tt.owners}}
			got := WorkloadOf(p)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if got.Replaced() != tt.replaced {
				t.Errorf("Replaced = %v, want %v", got.Replaced(), tt.replaced)
			}
		})
	}
}
