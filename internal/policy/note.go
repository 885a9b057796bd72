package policy

import (
	"time"

	v1 "k8s.io/api/core/v1"
)

const (
	// AnnotationPlacement holds, on each pod ning's scheduler placed, why
	// it chose the pod's site and the runner-up. TrafficLatency's Bind sets
	// it through the Binding, whose annotations the apiserver copies to the
	// pod: no request beyond the binding itself.
	AnnotationPlacement = "ning.io/placement"
	// ReasonPlacement names that decision where ning lists its decisions
	// (ning dashboard, ning explain), beside the rescheduler's Events.
	ReasonPlacement = "NingPlacement"
)

// PlacementNote returns the pod's placement note (AnnotationPlacement) and
// when the pod was bound (its PodScheduled condition's transition, else its
// creation), or false when the pod has none.
func PlacementNote(pod *v1.Pod) (string, time.Time, bool) {
	note, ok := pod.Annotations[AnnotationPlacement]
	if !ok {
		return "", time.Time{}, false
	}
	at := pod.CreationTimestamp.Time
	for _, c := range pod.Status.Conditions {
		if c.Type == v1.PodScheduled && c.Status == v1.ConditionTrue && !c.LastTransitionTime.IsZero() {
			at = c.LastTransitionTime.Time
		}
	}
	return note, at, true
}
