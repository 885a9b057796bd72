package dashboard

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/topology"
)

// t0 is the fixture's "now".
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func node(name, site string, isReady bool) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if site != "" {
		n.Labels[topology.DefaultSiteLabel] = site
	}
	status := v1.ConditionFalse
	if isReady {
		status = v1.ConditionTrue
	}
	n.Status.Conditions = []v1.NodeCondition{{Type: v1.NodeReady, Status: status}}
	return n
}

// podOf returns a ning-scheduled pod owned by the ReplicaSet rs of a
// Deployment (hash is its pod-template-hash), or a bare pod when rs is "".
func podOf(ns, name, rs, hash, nodeName string) *v1.Pod {
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{}},
		Spec: v1.PodSpec{SchedulerName: DefaultSchedulerName, NodeName: nodeName,
			Containers: []v1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
		Status: v1.PodStatus{Phase: v1.PodRunning},
	}
	if rs != "" {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs, UID: types.UID("uid-" + rs), Controller: ptr.To(true)}}
		p.Labels["pod-template-hash"] = hash
	}
	if nodeName == "" {
		p.Status.Phase = v1.PodPending
	}
	return p
}

// placed gives the pod the scheduler's placement note, bound at.
func placed(p *v1.Pod, note string, at time.Time) *v1.Pod {
	p.Annotations = map[string]string{policy.AnnotationPlacement: note}
	p.Status.Conditions = append(p.Status.Conditions, v1.PodCondition{Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)})
	return p
}

func event(ns, pod, reason, msg string, at time.Time) *v1.Event {
	return &v1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: ns, Name: pod + "." + reason},
		InvolvedObject: v1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod},
		Reason:         reason, Message: msg, Type: v1.EventTypeNormal,
		LastTimestamp: metav1.NewTime(at), Count: 1,
	}
}

// fixtureStore knows dallas, toronto, austin and paris: RTTs between the
// first three, paris only from dallas, and traffic at the first three.
func fixtureStore(t *testing.T) *topology.Store {
	t.Helper()
	clk := clocktesting.NewFakePassiveClock(t0)
	s := topology.NewStore(topology.Config{}, clk)
	for _, r := range []struct {
		a, b string
		ms   float64
	}{{"dallas", "toronto", 34}, {"dallas", "austin", 8}, {"toronto", "austin", 40}, {"dallas", "paris", 95}} {
		if err := s.SetStaticRTT(r.a, r.b, r.ms); err != nil {
			t.Fatal(err)
		}
	}
	for site, rps := range map[string]float64{"dallas": 100, "toronto": 20, "austin": 5} {
		if err := s.SetTraffic(site, rps, time.Time{}, true); err != nil {
			t.Fatal(err)
		}
	}
	// A measured RTT 10 s old makes the data age visible.
	clk.SetTime(t0.Add(-10 * time.Second))
	if err := s.ObserveRTT(topology.RTTSample{From: "toronto", To: "austin", MeanMs: 40, Sent: 5, Received: 5, At: t0.Add(-10 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	clk.SetTime(t0)
	return s
}

// fixtureInputs: dallas has two nodes (one not ready), toronto two, austin
// one, and edge-x is a node without the site label. Deployment web (ReplicaSet
// web-6d4f8) has three replicas in dallas, one in toronto and one pending; a
// terminating and a finished pod of it do not count; the bare pod solo runs
// on edge-x; a pod of another scheduler is not ning's.
func fixtureInputs() inputs {
	deleting := podOf("shop", "web-6d4f8-gone", "web-6d4f8", "6d4f8", "austin-1")
	deleting.DeletionTimestamp = ptr.To(metav1.NewTime(t0))
	done := podOf("shop", "web-6d4f8-done", "web-6d4f8", "6d4f8", "austin-1")
	done.Status.Phase = v1.PodSucceeded
	return inputs{
		nodes: []*v1.Node{
			node("dallas-1", "dallas", true), node("dallas-2", "dallas", false),
			node("toronto-1", "toronto", true), node("toronto-2", "toronto", true),
			node("austin-1", "austin", true), node("edge-x", "", true),
		},
		pods: []*v1.Pod{
			placed(podOf("shop", "web-6d4f8-a", "web-6d4f8", "6d4f8", "dallas-1"),
				"Placed in site dallas (node dallas-1): first replica: serves all 125 req/s at a weighted mean RTT of 5.76 ms", t0.Add(-90*time.Second)),
			podOf("shop", "web-6d4f8-b", "web-6d4f8", "6d4f8", "dallas-1"),
			podOf("shop", "web-6d4f8-c", "web-6d4f8", "6d4f8", "dallas-2"),
			podOf("shop", "web-6d4f8-d", "web-6d4f8", "6d4f8", "toronto-1"),
			podOf("shop", "web-6d4f8-e", "web-6d4f8", "6d4f8", ""),
			deleting, done,
			placed(podOf("lab", "solo", "", "", "edge-x"), "Placed in site edge-x (node edge-x)", t0.Add(-200*time.Second)),
		},
		events: []*v1.Event{
			event("shop", "web-6d4f8-old", "NingReschedule", "Evicted from site austin to move the replica toward dallas", t0.Add(-30*time.Second)),
			event("shop", "web-6d4f8-d", "Scheduled", "Successfully assigned shop/web-6d4f8-d to toronto-1", t0.Add(-20*time.Second)),
		},
		siteLabel: topology.DefaultSiteLabel,
		decisions: DefaultDecisions,
	}
}

// fixture is the snapshot of fixtureInputs and fixtureStore, with a history.
func fixture(t *testing.T) Snapshot {
	t.Helper()
	s := build(fixtureInputs(), fixtureStore(t))
	s.Time, s.Synced = t0, true
	for i := range 12 {
		r := map[string]int{"dallas": 1 + min(i/3, 2), "toronto": 3 - min(i/4, 2), "edge-x": 1}
		if i < 6 {
			r["austin"] = 1
		}
		s.History = append(s.History, Sample{Time: t0.Add(time.Duration(i-11) * 5 * time.Second), Replicas: r})
	}
	return s
}
