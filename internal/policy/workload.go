package policy

import (
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Workload names what groups a pod with its replicas: its controller
// (ReplicaSet, StatefulSet, ...), or the pod itself when it has none.
type Workload struct {
	UID  types.UID
	Kind string // "Pod" for a bare pod
	Name string
}

// WorkloadOf returns the pod's workload.
func WorkloadOf(pod *v1.Pod) Workload {
	if ref := metav1.GetControllerOf(pod); ref != nil {
		return Workload{UID: ref.UID, Kind: ref.Kind, Name: ref.Name}
	}
	return Workload{UID: pod.UID, Kind: "Pod", Name: pod.Name}
}

// Replaced reports whether the workload's controller makes a new pod when
// one is evicted or deleted, so that the rescheduler may move or heal it.
func (w Workload) Replaced() bool {
	return w.Kind == "ReplicaSet" || w.Kind == "StatefulSet"
}

// Owns reports whether pod belongs to the workload w: its controller is w's
// (a bare pod's workload owns no other pod). It allocates nothing, for loops
// over a node's pods.
func (w Workload) Owns(pod *v1.Pod) bool {
	if w.Kind == "Pod" {
		return pod.UID == w.UID
	}
	ref := metav1.GetControllerOfNoCopy(pod)
	return ref != nil && ref.UID == w.UID
}

// Counts reports whether pod counts as one of its workload's replicas where
// it runs: not once it is terminating or has ended, as for the ReplicaSet
// controller (its replacement is being placed to take over from it).
func Counts(pod *v1.Pod) bool {
	return pod.DeletionTimestamp == nil && pod.Status.Phase != v1.PodSucceeded && pod.Status.Phase != v1.PodFailed
}
