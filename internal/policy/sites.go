package policy

import (
	v1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/placement"
)

// Schedulable reports whether the pod could run on n as far as the node's
// state goes: Ready, not cordoned, no taint it does not tolerate. The
// rescheduler predicts the scheduler's choice with it, and ning explain
// tells which sites have a node for the pod by it.
func Schedulable(n *v1.Node, pod *v1.Pod) bool {
	if n.Spec.Unschedulable {
		return false
	}
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			ready = c.Status == v1.ConditionTrue
		}
	}
	if !ready {
		return false
	}
	_, untolerated := corev1helpers.FindMatchingUntoleratedTaint(n.Spec.Taints, pod.Spec.Tolerations, func(t *v1.Taint) bool {
		return t.Effect == v1.TaintEffectNoSchedule || t.Effect == v1.TaintEffectNoExecute
	})
	return !untolerated
}

// SiteNodes says, for each site's nodes (siteNodes[k] are site k's), whether
// the site has a node the pod could run on (Schedulable), and whether one of
// those is an edge node (not IsCloud), for UsableSites.
func SiteNodes(siteNodes [][]*v1.Node, pod *v1.Pod, cloud configv1alpha1.CloudFallbackArgs) (hasNode, hasEdge []bool) {
	hasNode = make([]bool, len(siteNodes))
	hasEdge = make([]bool, len(siteNodes))
	for k, nodes := range siteNodes {
		for _, n := range nodes {
			if Schedulable(n, pod) {
				hasNode[k] = true
				hasEdge[k] = hasEdge[k] || !IsCloud(n.Labels, cloud)
			}
		}
	}
	return hasNode, hasEdge
}

// UsableSites says which of sites (indexed like hasNode and hasEdge) the
// scheduler could place a pod on: a site with a schedulable node (hasNode)
// whose delay verdict is OK under the configured unknown-RTT policy, or, by
// the fail-open rule (CanFailOpen) when no site is usable, not broken by a
// measured RTT; then j has failed open. By CloudFallback's rule, a site with
// only cloud nodes is usable only when no site with an edge node (hasEdge)
// is: CloudFallback's weight puts the pod on any feasible edge node before a
// cloud one. j nil means the pod has no delay constraints.
func UsableSites(j *DelayJudgement, sites []string, hasNode, hasEdge []bool) []bool {
	judge := func() (usable []bool, any bool) {
		usable = make([]bool, len(sites))
		edge := false
		for k, site := range sites {
			usable[k] = hasNode[k] && (j == nil || j.Verdicts[site].OK)
			any = any || usable[k]
			edge = edge || (usable[k] && hasEdge[k])
		}
		if edge {
			for k := range usable {
				usable[k] = usable[k] && hasEdge[k]
			}
		}
		return usable, any
	}
	usable, any := judge()
	if !any && j != nil && j.CanFailOpen() {
		j.FailOpen()
		usable, _ = judge()
	}
	return usable
}

// Within is the problem p with no room at the sites that are not usable
// (the usable ones keep p's capacities, SiteLimits.Apply): the problem the
// planner solves for a workload whose pods may land only on the usable
// sites.
func Within(p *placement.Problem, usable []bool) *placement.Problem {
	q := *p
	q.Capacity = make([]int, len(p.Sites))
	for j := range q.Capacity {
		q.Capacity[j] = 0
		if usable[j] {
			q.Capacity[j] = placement.Unlimited
			if j < len(p.Capacity) { // a problem built without capacities has none
				q.Capacity[j] = p.Capacity[j]
			}
		}
	}
	return &q
}
