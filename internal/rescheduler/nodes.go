package rescheduler

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// nodeHealth is what CheckNodes concludes about one node.
type nodeHealth struct {
	down bool
	// unreachable is true when the node has gone silent (Lease not renewed,
	// Ready Unknown), so its kubelet cannot finish a graceful deletion.
	unreachable bool
	why         string
}

// health judges a node by its Lease, timed by when this process saw each
// renewal (not by the kubelet's clock), and by its Ready condition.
func (r *Rescheduler) health(n *v1.Node, now time.Time) nodeHealth {
	if l, err := r.leases.Leases(v1.NamespaceNodeLease).Get(n.Name); err == nil && l.Spec.RenewTime != nil {
		renew := l.Spec.RenewTime.Time
		s, ok := r.seen[n.Name]
		if !ok || !s.renew.Equal(renew) {
			s = leaseSeen{renew: renew, observed: now}
			r.seen[n.Name] = s
		}
		if silent := now.Sub(s.observed); silent >= r.cfg.NodeDownAfter {
			return nodeHealth{down: true, unreachable: true, why: fmt.Sprintf("its Lease has not been renewed for %s", silent.Round(time.Second))}
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type != v1.NodeReady || c.Status == v1.ConditionTrue {
			continue
		}
		if since := now.Sub(c.LastTransitionTime.Time); since >= r.cfg.NodeDownAfter {
			return nodeHealth{down: true, unreachable: c.Status == v1.ConditionUnknown,
				why: fmt.Sprintf("Ready has been %s for %s (%s)", c.Status, since.Round(time.Second), c.Reason)}
		}
	}
	return nodeHealth{}
}

func hasDownTaint(n *v1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == TaintNodeDown {
			return true
		}
	}
	return false
}

// CheckNodes finds down nodes, taints them so nothing new lands there, and
// deletes the ning pods on them that a ReplicaSet will replace (forced when
// the node is unreachable). A node that is back loses the taint. It returns
// the deletions made.
//
// Its view of the Leases must be live: each check first makes a request to
// the apiserver (a failure, or a failed watch, holds deletions back for
// NodeDownAfter), and when no node's Lease has been seen renewed for
// NodeDownAfter the view is taken to be stale, not every node dead.
func (r *Rescheduler) CheckNodes(ctx context.Context) []Eviction {
	if _, err := r.client.CoordinationV1().Leases(v1.NamespaceNodeLease).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		if ctx.Err() == nil {
			r.noteAPITrouble()
			r.log.WarnContext(ctx, "apiserver unreachable; not judging nodes", "err", err)
		}
		return nil
	}
	if r.recovering(r.cfg.NodeDownAfter) {
		r.m.Decisions.WithLabelValues("api_recovering").Inc()
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.leaseEvent.IsZero() && r.clock.Since(r.leaseEvent) >= r.cfg.NodeDownAfter {
		r.m.Decisions.WithLabelValues("stale_view").Inc()
		r.log.WarnContext(ctx, "no node Lease renewal seen for the node-down delay: taking the view as stale, judging no node", "since", r.clock.Since(r.leaseEvent).Round(time.Second))
		return nil
	}
	nodes, err := r.nodes.List(labels.Everything())
	if err != nil {
		r.log.ErrorContext(ctx, "checking nodes", "err", err)
		return nil
	}
	now := r.clock.Now()
	down := map[string]nodeHealth{}
	for _, n := range nodes {
		if h := r.health(n, now); h.down {
			down[n.Name] = h
		}
	}
	for name := range r.seen {
		if _, err := r.nodes.Get(name); apierrors.IsNotFound(err) {
			delete(r.seen, name)
		}
	}
	r.m.NodesDown.Set(float64(len(down)))
	if len(down) > 1 && float64(len(down)) > r.cfg.MaxDownFraction*float64(len(nodes)) {
		r.m.Decisions.WithLabelValues("mass_node_down").Inc()
		r.log.WarnContext(ctx, "too many nodes look down at once; suspecting the control plane or this process's view, deleting nothing",
			"down", len(down), "nodes", len(nodes), "maxDownFraction", r.cfg.MaxDownFraction)
		return nil
	}
	var out []Eviction
	for _, n := range nodes {
		h, isDown := down[n.Name]
		switch {
		case isDown:
			if !hasDownTaint(n) {
				r.log.WarnContext(ctx, "node down", "node", n.Name, "why", h.why, "dryRun", r.cfg.DryRun)
				if !r.cfg.DryRun {
					if err := r.setDownTaint(ctx, n.Name, true); err != nil {
						r.log.ErrorContext(ctx, "tainting down node", "node", n.Name, "err", err)
					} else {
						r.recorder.Eventf(n, v1.EventTypeWarning, ReasonNodeDown, "node is down: %s; ning deletes its replaceable pods", h.why)
					}
				}
			}
			out = append(out, r.clearNode(ctx, n.Name, h)...)
		case hasDownTaint(n):
			r.log.InfoContext(ctx, "node is back", "node", n.Name)
			if err := r.setDownTaint(ctx, n.Name, false); err != nil {
				r.log.ErrorContext(ctx, "untainting node", "node", n.Name, "err", err)
			} else {
				r.recorder.Eventf(n, v1.EventTypeNormal, ReasonNodeUp, "node is back; ning schedules onto it again")
			}
		}
	}
	r.forgetGone()
	return out
}

// clearNode deletes the ning pods on a down node that their controller
// will replace.
func (r *Rescheduler) clearNode(ctx context.Context, node string, h nodeHealth) []Eviction {
	pods, err := r.pods.List(labels.Everything())
	if err != nil {
		r.log.ErrorContext(ctx, "listing pods", "err", err)
		return nil
	}
	var out []Eviction
	for _, p := range pods {
		if p.Spec.NodeName != node || p.Spec.SchedulerName != r.cfg.SchedulerName || r.handled[p.UID] {
			continue
		}
		kind, _, _, ok := controllerOf(p)
		if !ok || (kind == "StatefulSet" && !r.cfg.AllowStatefulSetForce) {
			continue
		}
		// A graceful deletion needs the kubelet; an unreachable node's
		// never comes, and a StatefulSet pod must be gone before its
		// successor with the same name can start.
		force := h.unreachable || kind == "StatefulSet"
		msg := fmt.Sprintf("node %s is down (%s): deleting the pod so that its %s replaces it elsewhere", node, h.why, kind)
		e := Eviction{Pod: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}, Node: node, Reason: ReasonNodeDown, Message: msg, DryRun: r.cfg.DryRun}
		r.handled[p.UID] = true
		if r.cfg.DryRun {
			r.m.Evictions.WithLabelValues("node_down", "dry_run").Inc()
			r.log.InfoContext(ctx, "dry run: would delete", "pod", e.Pod.String(), "node", node, "force", force, "why", msg)
			out = append(out, e)
			continue
		}
		opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}}
		if force {
			opts.GracePeriodSeconds = ptr.To[int64](0)
		}
		switch err := r.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, opts); {
		case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
			r.m.Evictions.WithLabelValues("node_down", "gone").Inc()
			continue
		case err != nil:
			delete(r.handled, p.UID) // try again next check
			r.m.Evictions.WithLabelValues("node_down", "error").Inc()
			r.log.ErrorContext(ctx, "deleting pod on down node", "pod", e.Pod.String(), "err", err)
			continue
		}
		r.m.Evictions.WithLabelValues("node_down", "deleted").Inc()
		r.recorder.Eventf(p, v1.EventTypeWarning, ReasonNodeDown, "%s", msg)
		r.log.InfoContext(ctx, "deleted pod on down node", "pod", e.Pod.String(), "node", node, "force", force)
		out = append(out, e)
	}
	return out
}

// forgetGone drops handled pods that no longer exist.
func (r *Rescheduler) forgetGone() {
	if len(r.handled) == 0 {
		return
	}
	pods, err := r.pods.List(labels.Everything())
	if err != nil {
		return
	}
	live := make(map[types.UID]bool, len(pods))
	for _, p := range pods {
		live[p.UID] = true
	}
	for uid := range r.handled {
		if !live[uid] {
			delete(r.handled, uid)
		}
	}
}

// setDownTaint adds or removes the NoSchedule taint TaintNodeDown.
func (r *Rescheduler) setDownTaint(ctx context.Context, name string, on bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := r.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		var taints []v1.Taint
		for _, t := range n.Spec.Taints {
			if t.Key != TaintNodeDown {
				taints = append(taints, t)
			}
		}
		if on {
			taints = append(taints, v1.Taint{Key: TaintNodeDown, Effect: v1.TaintEffectNoSchedule, TimeAdded: ptr.To(metav1.Now())})
		}
		n.Spec.Taints = taints
		_, err = r.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
}
