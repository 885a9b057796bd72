package siteindex

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
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

func newIndex() *Index {
	return &Index{label: v1.LabelTopologyZone, nodeSite: map[string]string{}, siteNodes: map[string]int{},
		nodePods: map[string]map[types.UID]struct{}{}, pods: map[types.UID]podEntry{}, counts: map[types.UID]map[string]int{}}
}

func TestIndex(t *testing.T) {
	x := newIndex()
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
