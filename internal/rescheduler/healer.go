package rescheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/topology"
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
	// seen is, per node, what this process has seen of its Lease. What a
	// node's state is (down or not) lives in the cluster, so that a new
	// leader carries on: the taint, the Lease's renew time and the Ready
	// condition; seen only times renewals by this process's clock.
	seen map[string]leaseSeen
	// handled are pods already deleted from down nodes; warned, the pods on
	// down nodes that ning does not rescue and has said so.
	handled, warned map[types.UID]bool
	// leaseEvent is when the lease cache last saw any node's Lease change.
	leaseEvent time.Time
	// fates are the silent nodes' verdicts at the last check (to tell
	// the changes), badAutonomy the nodes whose autonomy annotation does
	// not parse, as said once.
	fates       map[string]policy.Fate
	badAutonomy map[string]string
	// linkUp is the last decide's sitesLinkUp.
	linkUp map[string]map[string]bool

	// heard is the data plane's last sign of a site (nil: none);
	// deployments, the Deployments that a cut-off node's capacity is added
	// to (nil: none is).
	heard       func(site string) time.Time
	deployments appslisters.DeploymentLister
}

// leaseSeen is what this process has seen of one node's Lease: the renew
// time it last read, the time from which it counts the node silent, and
// whether it has seen the Lease renewed (its renew time change).
type leaseSeen struct {
	renew, observed time.Time
	renewed         bool
}

// nodeLease is what the healer reads of a node's Lease: its renew time and
// its duration (zero when the Lease does not say).
type nodeLease struct {
	renew    time.Time
	duration time.Duration
}

func newHealer(cfg Config, client kubernetes.Interface, m *Metrics, log *slog.Logger, clk clock.PassiveClock, rec record.EventRecorder) *healer {
	return &healer{cfg: cfg, client: client, m: m, log: log, clock: clk, recorder: rec,
		seen: map[string]leaseSeen{}, handled: map[types.UID]bool{}, warned: map[types.UID]bool{},
		fates: map[string]policy.Fate{}, badAutonomy: map[string]string{}}
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
	// unconfirmed: the node carries the taint, but this process has not
	// seen it silent for NodeDownAfter yet (a new leader's first looks). It
	// stays down, and its pods wait.
	unconfirmed bool
	// cutOff: the node is silent, but only to the control plane
	// (policy.JudgeSilence): it stays tainted and keeps its pods, and
	// capacity is added elsewhere.
	cutOff bool
	why    string
}

// health judges a node by its Lease (a zero renew time without one), by the
// TaintNodeDown taint on it and by its Ready condition. Renewals are timed by
// when this process saw them, not by the kubelet's clock, except at the first
// look (firstSight). A node that carries the taint stays down until this
// process sees its Lease renewed: a new leader, whose first look at a dead
// node sees no renewal yet, keeps the taint its predecessor put on, and
// deletes the pods left there once the silence is confirmed.
func (h *healer) health(n *v1.Node, l nodeLease, now time.Time) nodeHealth {
	tainted, since := downTaint(n)
	if !l.renew.IsZero() {
		s, ok := h.seen[n.Name]
		switch {
		case !ok:
			s = leaseSeen{renew: l.renew, observed: h.firstSight(l, now)}
		case !s.renew.Equal(l.renew):
			s = leaseSeen{renew: l.renew, observed: now, renewed: true}
		}
		h.seen[n.Name] = s
		if silent := now.Sub(s.observed); silent >= h.cfg.NodeDownAfter {
			return h.judgeSilence(n, l, s, now)
		}
		if tainted && !s.renewed {
			why := "it carries " + TaintNodeDown + " and no renewal of its Lease has been seen since"
			if !since.IsZero() {
				why = fmt.Sprintf("it has carried %s for %s and no renewal of its Lease has been seen since", TaintNodeDown, now.Sub(since).Round(time.Second))
			}
			return nodeHealth{down: true, unconfirmed: true, unreachable: readyStatus(n) != v1.ConditionFalse, why: why}
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

// judgeSilence is the health of a node whose Lease this process has seen
// go unrenewed for NodeDownAfter: dead, or only cut off from the control
// plane (policy.JudgeSilence, on the data plane's last sign of its site and
// its autonomy annotation). Its silence counts from its Lease's renew time
// when this process saw it later (a new leader), and its next renewal was
// due a renewal period after.
func (h *healer) judgeSilence(n *v1.Node, l nodeLease, s leaseSeen, now time.Time) nodeHealth {
	since := s.observed
	if l.renew.Before(since) {
		since = l.renew
	}
	sl := policy.Silence{Since: since, Due: since.Add(renewalPeriod(l, h.cfg.NodeDownAfter))}
	site := topology.SiteOf(n.Name, n.Labels, h.cfg.SiteLabel)
	if h.heard != nil {
		sl.Heard = h.heard(site)
	}
	for other := range h.linkUp[site] {
		sl.SiteLinkUp = sl.SiteLinkUp || other != n.Name
	}
	a, err := policy.NodeAutonomy(n.Annotations)
	if err != nil {
		if h.badAutonomy[n.Name] != err.Error() {
			h.badAutonomy[n.Name] = err.Error()
			h.m.Decisions.WithLabelValues("bad_autonomy_annotation").Inc()
			h.log.Warn("node's autonomy annotation does not parse; judging the node without it", "node", n.Name, "err", err)
			if h.recorder != nil {
				h.recorder.Eventf(n, v1.EventTypeWarning, ReasonBadAutonomy, "%v; ning judges the node without it", err)
			}
		}
	} else {
		delete(h.badAutonomy, n.Name)
	}
	v := policy.JudgeSilence(h.cfg.partitionRule(), sl, a, now)
	return nodeHealth{down: true, unreachable: true, cutOff: v.Fate == policy.FateCutOff, why: fmt.Sprintf("its Lease has not been renewed for %s; %s", now.Sub(s.observed).Round(time.Second), v.Why)}
}

// sitesLinkUp maps each site to its nodes whose Lease was renewed within
// nodeDownAfter of now: while another node of a silent node's site is among
// them, the site's link to the control plane is up, and the node is not cut
// off with its site (policy.Silence.SiteLinkUp).
func sitesLinkUp(nodes []*v1.Node, leases map[string]nodeLease, now time.Time, nodeDownAfter time.Duration, siteLabel string) map[string]map[string]bool {
	up := map[string]map[string]bool{}
	for _, n := range nodes {
		if l, ok := leases[n.Name]; ok && !l.renew.IsZero() && now.Sub(l.renew) < nodeDownAfter {
			site := topology.SiteOf(n.Name, n.Labels, siteLabel)
			if up[site] == nil {
				up[site] = map[string]bool{}
			}
			up[site][n.Name] = true
		}
	}
	return up
}

// renewalPeriod is how often a node renews its Lease: a quarter of the
// Lease's duration, as the kubelet renews, or half NodeDownAfter if the
// Lease gives none.
func renewalPeriod(l nodeLease, nodeDownAfter time.Duration) time.Duration {
	if p := l.duration / 4; p > 0 {
		return p
	}
	return nodeDownAfter / 2
}

// firstSight is the time from which a process that has not seen a node's
// Lease before counts the node silent: the Lease's renew time (no later than
// now), so that a node that fell silent under the last leader is down on
// time under the next. But the first look alone never finds a node down:
// the node gets one renewal period more (a quarter of the Lease's duration,
// as the kubelet renews; half NodeDownAfter if the Lease gives none), in
// which a live kubelet whose clock lags renews and is seen to.
func (h *healer) firstSight(l nodeLease, now time.Time) time.Time {
	grace := renewalPeriod(l, h.cfg.NodeDownAfter)
	from := l.renew
	if from.After(now) {
		from = now
	}
	if earliest := now.Add(min(grace, h.cfg.NodeDownAfter) - h.cfg.NodeDownAfter); from.Before(earliest) {
		from = earliest
	}
	return from
}

// downTaint reports whether the node carries TaintNodeDown, and since when
// (zero when the taint does not say).
func downTaint(n *v1.Node) (bool, time.Time) {
	for _, t := range n.Spec.Taints {
		if t.Key == TaintNodeDown {
			if t.TimeAdded != nil {
				return true, t.TimeAdded.Time
			}
			return true, time.Time{}
		}
	}
	return false, time.Time{}
}

func hasDownTaint(n *v1.Node) bool {
	tainted, _ := downTaint(n)
	return tainted
}

func readyStatus(n *v1.Node) v1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status
		}
	}
	return v1.ConditionUnknown
}

// nodeAction is what the healer does about one node: taint it (down) and
// delete its pods, or untaint it (back).
type nodeAction struct {
	node    *v1.Node
	down    bool
	taint   bool // change the taint (add when down, remove when back)
	health  nodeHealth
	deletes []deletion
	// unrescued are the ning pods on the down node that ning leaves there,
	// newly found (each is reported once).
	unrescued []unrescued
	// surges are the capacity to add elsewhere for a cut-off node's pods;
	// release takes back what was added for the node (it is dead, and its
	// pods are replaced, or back).
	surges  []surge
	release bool
	// fate is the node's new verdict, when it changed ("" if not).
	fate policy.Fate
}

// surge is the replicas of one ReplicaSet on a cut-off node, which its
// Deployment gets in addition while the node is cut off.
type surge struct {
	namespace, replicaSet, templateHash string
	podLabels                           map[string]string // one pod's
	pods                                int
}

// unrescued is a pod on a down node that ning does not delete, and why:
// reason is the label of ning_rescheduler_pods_not_rescued_total.
type unrescued struct {
	pod         *v1.Pod
	reason, msg string
}

type deletion struct {
	request
	force bool
}

// decide judges every node, under the healer's lock and without I/O: the
// stale-view guard (no Lease renewal seen for NodeDownAfter), each node's
// health, and the mass-down guard (more than MaxDownFraction down). leases
// maps a node to its Lease; pods are all the cached pods.
func (h *healer) decide(ctx context.Context, nodes []*v1.Node, leases map[string]nodeLease, pods []*v1.Pod) []nodeAction {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock.Now()
	if !h.leaseEvent.IsZero() && now.Sub(h.leaseEvent) >= h.cfg.NodeDownAfter {
		h.m.Decisions.WithLabelValues("stale_view").Inc()
		h.log.WarnContext(ctx, "no node Lease renewal seen for the node-down delay: taking the view as stale, judging no node", "since", now.Sub(h.leaseEvent).Round(time.Second))
		return nil
	}
	h.linkUp = sitesLinkUp(nodes, leases, now, h.cfg.NodeDownAfter, h.cfg.SiteLabel)
	down := map[string]nodeHealth{}
	known := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		known[n.Name] = true
		if hl := h.health(n, leases[n.Name], now); hl.down {
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
			a := nodeAction{node: n, down: true, taint: !hasDownTaint(n), health: hl}
			switch {
			case hl.unconfirmed:
			case hl.cutOff:
				a.surges = h.surges(n.Name, pods)
				a.fate = h.setFate(n.Name, policy.FateCutOff)
			default:
				a.deletes, a.unrescued = h.deletions(n.Name, hl, pods)
				a.release = true
				a.fate = h.setFate(n.Name, policy.FateDead)
			}
			out = append(out, a)
		case hasDownTaint(n):
			out = append(out, nodeAction{node: n, taint: true, release: true})
		}
		if !isDown {
			delete(h.fates, n.Name)
		}
	}
	prune(h.fates, func(name string) bool { return known[name] })
	prune(h.badAutonomy, func(name string) bool { return known[name] })
	cutOff := 0
	for _, f := range h.fates {
		if f == policy.FateCutOff {
			cutOff++
		}
	}
	h.m.NodesCutOff.Set(float64(cutOff))
	return out
}

// setFate records a node's verdict, counts it and returns it if it changed
// ("" if not); call with h.mu held.
func (h *healer) setFate(node string, f policy.Fate) policy.Fate {
	if h.fates[node] == f {
		return ""
	}
	h.fates[node] = f
	h.m.NodeVerdicts.WithLabelValues(string(f)).Inc()
	return f
}

// surges counts, per ReplicaSet, the running ning pods on a cut-off node:
// the capacity its Deployment gets in addition while the node is cut off.
// StatefulSet pods get none (a second pod of one identity cannot run), nor
// bare pods.
func (h *healer) surges(node string, pods []*v1.Pod) []surge {
	byRS := map[[2]string]*surge{}
	var out []*surge
	for _, p := range pods {
		if p.Spec.NodeName != node || p.Spec.SchedulerName != h.cfg.SchedulerName || !policy.Counts(p) {
			continue
		}
		w := policy.WorkloadOf(p)
		hash := p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
		if w.Kind != "ReplicaSet" || hash == "" {
			continue
		}
		k := [2]string{p.Namespace, w.Name}
		if byRS[k] == nil {
			byRS[k] = &surge{namespace: p.Namespace, replicaSet: w.Name, templateHash: hash, podLabels: p.Labels}
			out = append(out, byRS[k])
		}
		byRS[k].pods++
	}
	res := make([]surge, 0, len(out))
	for _, sg := range out {
		res = append(res, *sg)
	}
	sort.Slice(res, func(i, j int) bool {
		return res[i].namespace+"/"+res[i].replicaSet < res[j].namespace+"/"+res[j].replicaSet
	})
	return res
}

// deletions picks the ning pods on a down node that their controller will
// replace, and marks them handled; a pod already terminating (deleted by
// this process or an earlier leader) is not deleted again. It also returns
// the ning pods it leaves there, newly seen, and marks them warned: a bare
// pod, which nothing would replace, and a StatefulSet pod without
// AllowStatefulSetForce.
func (h *healer) deletions(node string, hl nodeHealth, pods []*v1.Pod) ([]deletion, []unrescued) {
	var out []deletion
	var left []unrescued
	for _, p := range pods {
		if p.Spec.NodeName != node || p.Spec.SchedulerName != h.cfg.SchedulerName || h.handled[p.UID] || !policy.Counts(p) {
			continue
		}
		w := policy.WorkloadOf(p)
		if u, ok := h.cfg.notRescued(node, hl, w); ok {
			if !h.warned[p.UID] {
				h.warned[p.UID] = true
				u.pod = p
				left = append(left, u)
			}
			continue
		}
		if !w.Replaced() {
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
	return out, left
}

// notRescued says whether ning leaves a pod of workload w on the down node,
// and why: a bare pod is never deleted (nothing would make it again), a
// StatefulSet pod only with AllowStatefulSetForce (if the node is only cut
// off, its pod may still run beside a successor with the same identity).
// Pods of other controllers (a DaemonSet's, a Job's) are not ning's to move.
func (c Config) notRescued(node string, hl nodeHealth, w policy.Workload) (unrescued, bool) {
	switch {
	case w.Kind == "Pod":
		return unrescued{reason: "bare_pod", msg: fmt.Sprintf("node %s is down (%s), but ning does not delete a bare pod: no controller would make it again. "+
			"Recreate it elsewhere, or give it a controller (a Deployment)", node, hl.why)}, true
	case w.Kind == "StatefulSet" && !c.AllowStatefulSetForce:
		return unrescued{reason: "statefulset", msg: fmt.Sprintf("node %s is down (%s), but ning does not force-delete StatefulSet %s's pod without --allow-statefulset-force: "+
			"if the node is only cut off, the pod may still run beside a successor with its identity. It waits for the node, or for you to delete it", node, hl.why, w.Name)}, true
	}
	return unrescued{}, false
}

// forgetGone drops handled and warned pods that no longer exist; call with
// h.mu held.
func (h *healer) forgetGone(pods []*v1.Pod) {
	if len(h.handled) == 0 && len(h.warned) == 0 {
		return
	}
	live := make(map[types.UID]bool, len(pods))
	for _, p := range pods {
		live[p.UID] = true
	}
	prune(h.handled, func(uid types.UID) bool { return live[uid] })
	prune(h.warned, func(uid types.UID) bool { return live[uid] })
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
			h.log.WarnContext(ctx, "node down", "node", n.Name, "why", a.health.why, "cutOff", a.health.cutOff, "dryRun", h.cfg.DryRun)
			if !h.cfg.DryRun {
				if err := h.setDownTaint(ctx, n.Name, true); err != nil {
					h.log.ErrorContext(ctx, "tainting down node", "node", n.Name, "err", err)
				} else if !a.health.cutOff {
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
		h.noteFate(ctx, a)
		for _, sg := range a.surges {
			h.addSurge(ctx, n.Name, sg)
		}
		for _, u := range a.unrescued {
			h.m.NotRescued.WithLabelValues(u.reason).Inc()
			h.log.WarnContext(ctx, "pod on a down node not rescued", "pod", u.pod.Namespace+"/"+u.pod.Name, "node", n.Name, "reason", u.reason)
			h.recorder.Eventf(u.pod, v1.EventTypeWarning, ReasonNotRescued, "%s", u.msg)
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
		if a.release {
			h.releaseSurges(ctx, n.Name)
		}
	}
	return out
}

// noteFate says a node's new verdict in an Event: a
// NingNodeCutOff when it is cut off, a NingNodeDown when a node that was
// cut off is now dead (a node found dead at once gets its Event with the
// taint).
func (h *healer) noteFate(ctx context.Context, a nodeAction) {
	if a.fate == "" {
		return
	}
	n := a.node
	switch {
	case a.fate == policy.FateCutOff:
		h.log.WarnContext(ctx, "node cut off from the control plane: keeping its pods, adding capacity elsewhere", "node", n.Name, "why", a.health.why, "dryRun", h.cfg.DryRun)
		h.recorder.Eventf(n, v1.EventTypeWarning, ReasonNodeCutOff, "node is cut off, not dead: %s; ning keeps its pods, takes new ones elsewhere (%s) and adds their capacity to their Deployments", a.health.why, TaintNodeDown)
	case !a.taint:
		h.log.WarnContext(ctx, "cut-off node now dead", "node", n.Name, "why", a.health.why, "dryRun", h.cfg.DryRun)
		h.recorder.Eventf(n, v1.EventTypeWarning, ReasonNodeDown, "node is down: %s; ning deletes its replaceable pods and takes back the capacity it added", a.health.why)
	}
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
