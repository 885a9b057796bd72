package siteindex

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	schedcache "k8s.io/kubernetes/pkg/scheduler/backend/cache"
	schedmetrics "k8s.io/kubernetes/pkg/scheduler/metrics"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/policy"
)

func node(name, zone string) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if zone != "" {
		n.Labels[v1.LabelTopologyZone] = zone
	}
	return n
}

func pod(uid, owner, nodeName string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid)}, Spec: v1.PodSpec{NodeName: nodeName}}
	if owner != "" {
		p.OwnerReferences = []metav1.OwnerReference{{UID: types.UID(owner), Controller: ptr.To(true)}}
	}
	return p
}

func TestIndex(t *testing.T) {
	x := newIndex(v1.LabelTopologyZone)
	// A pod seen before its node is counted once the node appears.
	x.setPod(pod("p1", "rs", "n1"))
	x.setNode(node("n1", "a"))
	x.setNode(node("n2", "b"))
	x.setNode(node("n3", ""))
	x.setPod(pod("p2", "rs", "n2"))
	x.setPod(pod("p3", "other", "n2"))
	x.setPod(pod("unbound", "rs", ""))
	if diff := cmp.Diff(map[string]int{"a": 1, "b": 1}, x.Counts("rs", "")); diff != "" {
		t.Fatalf("counts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a", "b", "n3"}, x.Sites()); diff != "" {
		t.Fatalf("sites: %s", diff)
	}
	// Assumed pods count until forgotten; a bound one is not forgotten.
	x.Assume(pod("p4", "rs", ""), "n1")
	x.Assume(pod("p5", "rs", ""), "n2")
	x.setPod(pod("p4", "rs", "")) // the informer's late sight of a pending pod keeps what was assumed
	if diff := cmp.Diff(map[string]int{"a": 2, "b": 2}, x.Counts("rs", "")); diff != "" {
		t.Fatalf("assumed, then the informer saw them pending (-want +got):\n%s", diff)
	}
	x.setPod(pod("p5", "rs", "n2"))
	x.Forget(pod("p4", "rs", ""))
	x.Forget(pod("p5", "rs", ""))
	if diff := cmp.Diff(map[string]int{"a": 1, "b": 2}, x.Counts("rs", "")); diff != "" {
		t.Fatalf("after assume/forget (-want +got):\n%s", diff)
	}
	// The pod being scheduled is not counted.
	if diff := cmp.Diff(map[string]int{"a": 1, "b": 1}, x.Counts("rs", "p5")); diff != "" {
		t.Fatalf("excluding p5 (-want +got):\n%s", diff)
	}
	// A terminating pod no longer counts: its replacement takes its place.
	x.setPod(pod("p6", "rs", "n1"))
	terminating := pod("p6", "rs", "n1")
	terminating.DeletionTimestamp = ptr.To(metav1.Now())
	x.setPod(terminating)
	if diff := cmp.Diff(map[string]int{"a": 1, "b": 2}, x.Counts("rs", "")); diff != "" {
		t.Fatalf("after a pod began terminating (-want +got):\n%s", diff)
	}
	// A node moving site moves its pods; a deleted node drops them.
	x.setNode(node("n2", "c"))
	if diff := cmp.Diff(map[string]int{"a": 1, "c": 2}, x.Counts("rs", "")); diff != "" {
		t.Fatalf("after relabel (-want +got):\n%s", diff)
	}
	x.deleteNode(cache.DeletedFinalStateUnknown{Obj: node("n1", "a")})
	x.deletePod(pod("p2", "rs", "n2"))
	succeeded := pod("p5", "rs", "n2")
	succeeded.Status.Phase = v1.PodSucceeded
	x.setPod(succeeded)
	if diff := cmp.Diff(map[string]int{}, x.Counts("rs", "")); diff != "" {
		t.Fatalf("after deletions (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"c", "n3"}, x.Sites()); diff != "" {
		t.Fatalf("sites: %s", diff)
	}
}

// TestNodeCountsMatchNodeInfo feeds the scheduler's own cache and the index
// the same events, as kube-scheduler and a plugin's Reserve and Unreserve do,
// and checks after each that NodeCounts is what a walk of the cache's
// NodeInfos counts: the workload's pods, assumed ones included, without those
// being deleted, none for a bare pod.
func TestNodeCountsMatchNodeInfo(t *testing.T) {
	logger := klog.Background()
	schedmetrics.Register() // the cache's cleanup loop sets its gauges
	c := schedcache.New(t.Context(), 0, nil)
	x := newIndex(v1.LabelTopologyZone)
	for _, n := range []*v1.Node{node("n1", "a"), node("n2", "b")} {
		c.AddNode(logger, n)
		x.setNode(n)
	}
	workloads := []policy.Workload{{UID: "rs", Kind: "ReplicaSet"}, {UID: "other", Kind: "ReplicaSet"}, {UID: "bare", Kind: "Pod"}}
	check := func(step string) {
		t.Helper()
		snap := schedcache.NewEmptySnapshot()
		if err := c.UpdateSnapshot(logger, snap); err != nil {
			t.Fatal(err)
		}
		nodes, err := snap.NodeInfos().List()
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range workloads {
			walk := map[string]int{}
			for _, ni := range nodes {
				for _, pi := range ni.GetPods() {
					if p := pi.GetPod(); w.Kind != "Pod" && p.DeletionTimestamp == nil && w.Owns(p) {
						walk[ni.Node().Name]++
					}
				}
			}
			if diff := cmp.Diff(walk, x.NodeCounts(w)); diff != "" {
				t.Fatalf("%s: workload %s: NodeCounts (-NodeInfo walk +index):\n%s", step, w.UID, diff)
			}
		}
	}
	bound := func(p *v1.Pod) { // the informer's sight of a bound pod
		t.Helper()
		if err := c.AddPod(logger, p); err != nil {
			t.Fatal(err)
		}
		x.setPod(p)
	}
	reserve := func(p *v1.Pod, node string) *v1.Pod { // the scheduler assumes, then Reserve
		t.Helper()
		assumed := p.DeepCopy()
		assumed.Spec.NodeName = node
		if err := c.AssumePod(logger, assumed); err != nil {
			t.Fatal(err)
		}
		x.Assume(p, node)
		return assumed
	}

	for _, p := range []*v1.Pod{pod("p1", "rs", "n1"), pod("p2", "rs", "n2"), pod("p3", "other", "n1"), pod("bare", "", "n1")} {
		bound(p)
	}
	check("bound pods")

	p4 := pod("p4", "rs", "")
	assumed := reserve(p4, "n1")
	check("reserve")
	x.setPod(p4) // the informer's late sight of it pending; the cache ignores unassigned pods
	check("reserved, then seen pending")
	if err := c.FinishBinding(logger, assumed); err != nil {
		t.Fatal(err)
	}
	bound(pod("p4", "rs", "n1"))
	check("bind")

	p5 := pod("p5", "rs", "")
	assumed = reserve(p5, "n2")
	check("reserve another")
	if err := c.ForgetPod(logger, assumed); err != nil {
		t.Fatal(err)
	}
	if !x.Forget(p5) {
		t.Fatal("Forget of an assumed pod: false")
	}
	check("unreserve")
	if x.Forget(pod("p4", "rs", "n1")) {
		t.Fatal("Forget of a bound pod: true")
	}
	check("unreserve of a bound pod is a no-op")

	p6 := pod("p6", "rs", "")
	reserve(p6, "n1")
	bound(pod("p6", "rs", "n2")) // bound elsewhere than assumed (another binder)
	check("pod moved")

	p2 := pod("p2", "rs", "n2")
	deleting := p2.DeepCopy()
	deleting.DeletionTimestamp = ptr.To(metav1.Now())
	if err := c.UpdatePod(logger, p2, deleting); err != nil {
		t.Fatal(err)
	}
	x.setPod(deleting)
	check("delete in progress")
	if err := c.RemovePod(logger, deleting); err != nil {
		t.Fatal(err)
	}
	x.deletePod(cache.DeletedFinalStateUnknown{Obj: deleting})
	check("deleted")
}
