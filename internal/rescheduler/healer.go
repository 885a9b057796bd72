package rescheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/policy"
)

// healer finds down nodes, taints them and deletes their replaceable pods.
// It decides under its own lock and calls the apiserver outside it, so the
// lease informer's handler (sawLease) never waits behind a deletion.
type healer struct {
	cfg      Config
	client   kubernetes.Interface
	m        *Metrics
	log      *slog.Logger
	clock    clock.PassiveClock
	recorder record.EventRecorder

	mu sync.Mutex // guards the state below
	// seen is, per node, the last Lease renewal and when it was observed.
	seen map[string]leaseSeen
	// handled are pods already deleted from down nodes.
	handled map[types.UID]bool
	// leaseEvent is when the lease cache last saw any node's Lease change.
	leaseEvent time.Time
}

type leaseSeen struct {
	renew, observed time.Time
}

func newHealer(cfg Config, client kubernetes.Interface, m *Metrics, log *slog.Logger, clk clock.PassiveClock, rec record.EventRecorder) *healer {
	return &healer{cfg: cfg, client: client, m: m, log: log, clock: clk, recorder: rec,
		seen: map[string]leaseSeen{}, handled: map[types.UID]bool{}}
}

func (h *healer) sawLease() {
	h.mu.Lock()
	h.leaseEvent = h.clock.Now()
	h.mu.Unlock()
}

// nodeHealth is what the healer concludes about one node.
type nodeHealth struct {
	down bool
	// unreachable is true when the node has gone silent (Lease not renewed,
	// Ready Unknown), so its kubelet cannot finish a graceful deletion.
	unreachable bool
	why         string
}

// health judges a node by its Lease (renew is the zero time without one),
// timed by when this process saw each renewal (not by the kubelet's clock),
// and by its Ready condition.
func (h *healer) health(n *v1.Node, renew, now time.Time) nodeHealth {
	if !renew.IsZero() {
		s, ok := h.seen[n.Name]
		if !ok || !s.renew.Equal(renew) {
			s = leaseSeen{renew: renew, observed: now}
			h.seen[n.Name] = s
		}
		if silent := now.Sub(s.observed); silent >= h.cfg.NodeDownAfter {
			return nodeHealth{down: true, unreachable: true, why: fmt.Sprintf("its Lease has not been renewed for %s", silent.Round(time.Second))}
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type != v1.NodeReady || c.Status == v1.ConditionTrue {
			continue
		}
		if since := now.Sub(c.LastTransitionTime.Time); since >= h.cfg.NodeDownAfter {
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

// nodeAction is what the healer does about one node: taint it (down) and
// delete its pods, or untaint it (back).
type nodeAction struct {
	node    *v1.Node
	down    bool
	taint   bool // change the taint (add when down, remove when back)
	health  nodeHealth
	deletes []deletion
}

type deletion struct {
	request
	force bool
}

// decide judges every node, under the healer's lock and without I/O: the
// stale-view guard (no Lease renewal seen for NodeDownAfter), each node's
// health, and the mass-down guard (more than MaxDownFraction down). renew
// maps a node to its Lease's renew time; pods are all the cached pods.
func (h *healer) decide(ctx context.Context, nodes []*v1.Node, renew map[string]time.Time, pods []*v1.Pod) []nodeAction {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock.Now()
	if !h.leaseEvent.IsZero() && now.Sub(h.leaseEvent) >= h.cfg.NodeDownAfter {
		h.m.Decisions.WithLabelValues("stale_view").Inc()
		h.log.WarnContext(ctx, "no node Lease renewal seen for the node-down delay: taking the view as stale, judging no node", "since", now.Sub(h.leaseEvent).Round(time.Second))
		return nil
	}
	down := map[string]nodeHealth{}
	known := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		known[n.Name] = true
		if hl := h.health(n, renew[n.Name], now); hl.down {
			down[n.Name] = hl
		}
	}
	prune(h.seen, func(name string) bool { return known[name] })
	h.m.NodesDown.Set(float64(len(down)))
	defer h.forgetGone(pods)
	if len(down) > 1 && float64(len(down)) > h.cfg.MaxDownFraction*float64(len(nodes)) {
		h.m.Decisions.WithLabelValues("mass_node_down").Inc()
		h.log.WarnContext(ctx, "too many nodes look down at once; suspecting the control plane or this process's view, deleting nothing",
			"down", len(down), "nodes", len(nodes), "maxDownFraction", h.cfg.MaxDownFraction)
		return nil
	}
	var out []nodeAction
	for _, n := range nodes {
		hl, isDown := down[n.Name]
		switch {
		case isDown:
			out = append(out, nodeAction{node: n, down: true, taint: !hasDownTaint(n), health: hl, deletes: h.deletions(n.Name, hl, pods)})
		case hasDownTaint(n):
			out = append(out, nodeAction{node: n, taint: true})
		}
	}
	return out
}

// deletions picks the ning pods on a down node that their controller will
// replace, and marks them handled.
func (h *healer) deletions(node string, hl nodeHealth, pods []*v1.Pod) []deletion {
	var out []deletion
	for _, p := range pods {
		if p.Spec.NodeName != node || p.Spec.SchedulerName != h.cfg.SchedulerName || h.handled[p.UID] {
			continue
		}
		w := policy.WorkloadOf(p)
		if !w.Replaced() || (w.Kind == "StatefulSet" && !h.cfg.AllowStatefulSetForce) {
			continue
		}
		// A graceful deletion needs the kubelet; an unreachable node's
		// never comes, and a StatefulSet pod must be gone before its
		// successor with the same name can start.
		msg := fmt.Sprintf("node %s is down (%s): deleting the pod so that its %s replaces it elsewhere", node, hl.why, w.Kind)
		h.handled[p.UID] = true
		out = append(out, deletion{request: request{pod: p, workload: w.UID, reason: ReasonNodeDown, metric: "node_down", msg: msg},
			force: hl.unreachable || w.Kind == "StatefulSet"})
	}
	return out
}

// forgetGone drops handled pods that no longer exist; call with h.mu held.
func (h *healer) forgetGone(pods []*v1.Pod) {
	if len(h.handled) == 0 {
		return
	}
	live := make(map[types.UID]bool, len(pods))
	for _, p := range pods {
		live[p.UID] = true
	}
	prune(h.handled, func(uid types.UID) bool { return live[uid] })
}

// act carries out the decisions: taints, untaints and deletions, through the
// apiserver, without the lock. A deletion that failed is tried again at the
// next check.
func (h *healer) act(ctx context.Context, actions []nodeAction, ev *evictor) []Eviction {
	var out []Eviction
	for _, a := range actions {
		n := a.node
		switch {
		case a.down && a.taint:
			h.log.WarnContext(ctx, "node down", "node", n.Name, "why", a.health.why, "dryRun", h.cfg.DryRun)
			if !h.cfg.DryRun {
				if err := h.setDownTaint(ctx, n.Name, true); err != nil {
					h.log.ErrorContext(ctx, "tainting down node", "node", n.Name, "err", err)
				} else {
					h.recorder.Eventf(n, v1.EventTypeWarning, ReasonNodeDown, "node is down: %s; ning deletes its replaceable pods", a.health.why)
				}
			}
		case !a.down:
			h.log.InfoContext(ctx, "node is back", "node", n.Name)
			if err := h.setDownTaint(ctx, n.Name, false); err != nil {
				h.log.ErrorContext(ctx, "untainting node", "node", n.Name, "err", err)
			} else {
				h.recorder.Eventf(n, v1.EventTypeNormal, ReasonNodeUp, "node is back; ning schedules onto it again")
			}
		}
		for _, d := range a.deletes {
			e, res := ev.delete(ctx, d.request, d.force)
			switch {
			case res == resultError:
				h.mu.Lock()
				delete(h.handled, d.pod.UID)
				h.mu.Unlock()
			case res.done():
				out = append(out, e)
			}
		}
	}
	return out
}

// setDownTaint adds or removes the NoSchedule taint TaintNodeDown, with a
// merge patch of spec.taints alone (the chart grants `nodes patch`, and its
// ValidatingAdmissionPolicy refuses any other change). The patch carries the
// resourceVersion read, so a concurrent change gets a conflict and a retry.
func (h *healer) setDownTaint(ctx context.Context, name string, on bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := h.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		taints := []v1.Taint{}
		for _, t := range n.Spec.Taints {
			if t.Key != TaintNodeDown {
				taints = append(taints, t)
			}
		}
		if on {
			taints = append(taints, v1.Taint{Key: TaintNodeDown, Effect: v1.TaintEffectNoSchedule, TimeAdded: ptr.To(metav1.NewTime(h.clock.Now()))})
		}
		patch, err := json.Marshal(map[string]any{
			"metadata": map[string]any{"resourceVersion": n.ResourceVersion},
			"spec":     map[string]any{"taints": taints}, // nil removes the field
		})
		if err != nil {
			return fmt.Errorf("node %s: the taint patch: %w", name, err)
		}
		_, err = h.client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	})
}
