package devcluster

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Placement counts the running pods (bound, not terminating) matching
// selector in ns per site, with siteOf mapping node to site, and how many of
// them are Ready; total counts every matching pod.
func Placement(ctx context.Context, c kubernetes.Interface, ns, selector string, siteOf map[string]string) (perSite map[string]int, ready, total int, err error) {
	list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("listing pods %s in %s: %w", selector, ns, err)
	}
	perSite = map[string]int{}
	for _, p := range list.Items {
		total++
		if p.Spec.NodeName == "" || p.DeletionTimestamp != nil {
			continue
		}
		perSite[siteOf[p.Spec.NodeName]]++
		for _, cond := range p.Status.Conditions {
			if cond.Type == v1.PodReady && cond.Status == v1.ConditionTrue {
				ready++
			}
		}
	}
	return perSite, ready, total, nil
}

// ReadyAway counts the Ready pods matching selector in ns and reports
// whether any of them (Ready or not) is still bound to node: a workload has
// recovered from losing node when none is and all are Ready.
func ReadyAway(ctx context.Context, c kubernetes.Interface, ns, selector, node string) (ready int, onNode bool, err error) {
	list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return 0, false, fmt.Errorf("listing pods %s in %s: %w", selector, ns, err)
	}
	for _, p := range list.Items {
		if p.Spec.NodeName == node {
			onNode = true
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == v1.PodReady && cond.Status == v1.ConditionTrue {
				ready++
			}
		}
	}
	return ready, onNode, nil
}
