package rescheduler

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"

	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/topology"
)

// view is one cycle's picture of the cluster: sites, their RTTs and traffic,
// and the nodes in each.
type view struct {
	sites     []string
	index     map[string]int
	nodeSite  map[string]string
	siteNodes [][]*v1.Node
	rtt       [][]float64
	traffic   []float64
	total     float64
}

func (r *Rescheduler) view() (*view, error) {
	nodes, err := r.nodes.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	v := &view{index: map[string]int{}, nodeSite: map[string]string{}}
	for _, n := range nodes {
		site := topology.SiteOf(n.Name, n.Labels, r.cfg.SiteLabel)
		v.nodeSite[n.Name] = site
		if _, ok := v.index[site]; !ok {
			v.index[site] = 0
			v.sites = append(v.sites, site)
		}
	}
	sort.Strings(v.sites)
	v.siteNodes = make([][]*v1.Node, len(v.sites))
	for i, s := range v.sites {
		v.index[s] = i
	}
	for _, n := range nodes {
		i := v.index[v.nodeSite[n.Name]]
		v.siteNodes[i] = append(v.siteNodes[i], n)
	}
	v.rtt = r.store.Matrix(v.sites)
	traffic := r.store.Traffic()
	v.traffic = make([]float64, len(v.sites))
	for i, s := range v.sites {
		v.traffic[i] = traffic[s]
		v.total += traffic[s]
	}
	return v, nil
}

// schedulable reports whether the pod could run on n as far as the node's
// state goes: Ready, not cordoned, no taint it does not tolerate.
func schedulable(n *v1.Node, pod *v1.Pod) bool {
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

// constraints resolves the pod's delay labels to sites. ok is false when a
// label does not parse (counted once per pod) or its <from> is not found.
func (r *Rescheduler) constraints(pod *v1.Pod, v *view) ([]placement.Resolved, bool) {
	cs, err := placement.ParseConstraints(pod.Labels)
	if err != nil {
		if !r.badLabels[pod.UID] {
			r.badLabels[pod.UID] = true
			r.m.BadLabels.Inc()
			r.log.Warn("pod has malformed delay labels; the rescheduler does not enforce them", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		}
		return nil, false
	}
	out := make([]placement.Resolved, 0, len(cs))
	for _, c := range cs {
		site, ok := r.resolve(c.From, pod.Namespace, v)
		if !ok {
			return nil, false
		}
		out = append(out, placement.Resolved{Constraint: c, FromSite: site})
	}
	return out, true
}

// resolve finds the site of a constraint's <from>: a node, a site or a pod,
// as the NetworkLatency plugin does.
func (r *Rescheduler) resolve(from, namespace string, v *view) (string, bool) {
	if site, ok := v.nodeSite[from]; ok {
		return site, true
	}
	if _, ok := v.index[from]; ok {
		return from, true
	}
	p, err := r.pods.Pods(namespace).Get(from)
	if err != nil || p.Spec.NodeName == "" {
		return "", false
	}
	site, ok := v.nodeSite[p.Spec.NodeName]
	return site, ok
}

// usableSites says, for a pod of the workload, which sites the scheduler
// could place it on: a schedulable node, and delay constraints met with
// known RTTs (the scheduler's default, fail closed).
func (r *Rescheduler) usableSites(pod *v1.Pod, cs []placement.Resolved, v *view) []bool {
	usable := make([]bool, len(v.sites))
	for j, site := range v.sites {
		if !placement.CheckSite(cs, site, r.store, placement.FailClosed).OK {
			continue
		}
		for _, n := range v.siteNodes[j] {
			if schedulable(n, pod) {
				usable[j] = true
				break
			}
		}
	}
	return usable
}

// budget enforces the per-cycle, per-namespace and per-workload limits.
type budget struct {
	cfg         Config
	total       int
	perNS       map[string]int
	perWorkload map[types.UID]int
}

func (b *budget) allows(w *workload) bool {
	return b.total < b.cfg.MaxPerCycle && b.perNS[w.namespace] < b.cfg.MaxPerNamespace && b.perWorkload[w.uid] < b.cfg.MaxPerWorkload
}

func (b *budget) spend(w *workload) {
	b.total++
	b.perNS[w.namespace]++
	b.perWorkload[w.uid]++
}

// Cycle makes one rescheduling pass and returns the evictions it made. It
// first repairs delay-constraint violations, then moves pods toward traffic.
func (r *Rescheduler) Cycle(ctx context.Context) []Eviction {
	start := r.clock.Now()
	defer func() { r.m.CycleDuration.Observe(r.clock.Since(start).Seconds()) }()
	// After an apiserver outage the caches may lag behind for a while
	// (a reflector backs off): give them the node-down delay to catch up.
	if r.recovering(max(r.cfg.NodeDownAfter, 2*r.cfg.Interval)) {
		r.m.Decisions.WithLabelValues("api_recovering").Inc()
		r.log.InfoContext(ctx, "apiserver watch failed recently; not acting on the caches this cycle")
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	v, err := r.view()
	if err != nil {
		r.log.ErrorContext(ctx, "rescheduling cycle", "err", err)
		return nil
	}
	ws, err := r.workloads()
	if err != nil {
		r.log.ErrorContext(ctx, "rescheduling cycle", "err", err)
		return nil
	}
	b := &budget{cfg: r.cfg, perNS: map[string]int{}, perWorkload: map[types.UID]int{}}
	seen := map[string]bool{}
	var out []Eviction
	r.m.WeightedRTT.Reset()
	for _, w := range ws {
		if e, ok := r.workloadCycle(ctx, w, v, b, seen); ok {
			out = append(out, e)
		}
	}
	for k := range r.holds {
		if !seen[k] {
			delete(r.holds, k)
		}
	}
	for uid := range r.settling {
		if !containsWorkload(ws, uid) {
			delete(r.settling, uid)
		}
	}
	return out
}

func containsWorkload(ws []*workload, uid types.UID) bool {
	for _, w := range ws {
		if w.uid == uid {
			return true
		}
	}
	return false
}

// workloadCycle decides for one workload: at most one eviction.
func (r *Rescheduler) workloadCycle(ctx context.Context, w *workload, v *view, b *budget, seen map[string]bool) (Eviction, bool) {
	running := w.running()
	if len(running) == 0 {
		return Eviction{}, false
	}
	sample := running[0]
	cs, csOK := r.constraints(sample, v)
	usable := r.usableSites(sample, cs, v)
	current := make(placement.Placement, len(v.sites))
	for _, p := range running {
		if site, ok := v.nodeSite[p.Spec.NodeName]; ok {
			current[v.index[site]]++
		}
	}
	prob := &placement.Problem{Sites: v.sites, Traffic: v.traffic, RTT: v.rtt, Replicas: current.Total(), PerReplicaRPS: r.cfg.PerReplicaRPS}

	// Delay violations, measured (a known RTT over the limit); an unknown
	// RTT alone never evicts.
	var violator *v1.Pod
	var violation string
	if csOK && len(cs) > 0 {
		for _, p := range running {
			site := v.nodeSite[p.Spec.NodeName]
			if verdict := placement.CheckSite(cs, site, r.store, placement.FailOpen); !verdict.OK {
				key := "delay/" + string(p.UID)
				if r.hold(key, seen) && violator == nil {
					violator, violation = p, verdict.Reason
				}
			}
		}
	}
	if !r.settled(w) {
		r.m.Decisions.WithLabelValues("settling").Inc()
		return Eviction{}, false
	}
	if violator != nil {
		if !anyOther(usable, v.index[v.nodeSite[violator.Spec.NodeName]]) {
			r.m.Decisions.WithLabelValues("no_compliant_site").Inc()
			r.log.InfoContext(ctx, "delay constraint broken but no other site meets it; leaving the pod", "pod", violator.Namespace+"/"+violator.Name, "why", violation)
			return Eviction{}, false
		}
		if !b.allows(w) {
			r.m.Decisions.WithLabelValues("limited").Inc()
			return Eviction{}, false
		}
		return r.evict(ctx, w, b, violator, ReasonDelayViolation, "delay_violation", violation)
	}

	if v.total <= 0 {
		r.m.Decisions.WithLabelValues("no_traffic").Inc()
		return Eviction{}, false
	}
	m, why, ok := nextMove(prob, current, siteLimits{Usable: usable, MinKeep: r.cfg.MinPerTrafficSite})
	r.m.WeightedRTT.WithLabelValues(w.namespace, w.kind+"/"+w.name, "actual").Set(finite(m.Before))
	r.m.WeightedRTT.WithLabelValues(w.namespace, w.kind+"/"+w.name, "planned").Set(finite(m.Planned))
	gain := 0.0
	if m.Before > 0 {
		gain = (m.Before - m.Planned) / m.Before
	}
	if gain < r.cfg.Threshold || m.Before-m.Planned < r.cfg.MinGainMs || m.Before <= 0 {
		r.m.Decisions.WithLabelValues("below_threshold").Inc()
		return Eviction{}, false
	}
	if !r.hold("traffic/"+string(w.uid), seen) {
		r.m.Decisions.WithLabelValues("holding").Inc()
		return Eviction{}, false
	}
	if !ok {
		r.m.Decisions.WithLabelValues("no_improving_move").Inc()
		r.log.DebugContext(ctx, "plan is better but no single eviction gets closer", "workload", w.String(), "why", why)
		return Eviction{}, false
	}
	if !b.allows(w) {
		r.m.Decisions.WithLabelValues("limited").Inc()
		return Eviction{}, false
	}
	pod := newestOn(running, v, v.sites[m.From])
	msg := fmt.Sprintf("moving a replica of %s from %s toward %s: weighted RTT %.1fms now (%s), %.1fms after this move, %.1fms planned (%s, %.0f%% better)",
		w.kind+"/"+w.name, v.sites[m.From], v.sites[m.To], m.Before, describe(v.sites, current), m.After, m.Planned, describe(v.sites, m.Plan), 100*gain)
	return r.evict(ctx, w, b, pod, ReasonReschedule, "traffic", msg)
}

func finite(v float64) float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return placement.UnknownRTTPenaltyMs
	}
	return v
}

func anyOther(usable []bool, site int) bool {
	for j, u := range usable {
		if u && j != site {
			return true
		}
	}
	return false
}

// newestOn picks the youngest running pod in site: it has the least state
// built up, and ties break by name for a stable choice.
func newestOn(pods []*v1.Pod, v *view, site string) *v1.Pod {
	var best *v1.Pod
	for _, p := range pods {
		if v.nodeSite[p.Spec.NodeName] != site {
			continue
		}
		if best == nil || p.CreationTimestamp.After(best.CreationTimestamp.Time) ||
			(p.CreationTimestamp.Equal(&best.CreationTimestamp) && p.Name > best.Name) {
			best = p
		}
	}
	return best
}

// settled reports whether the workload may be acted on: every pod Ready
// and nothing pending or terminating, and the replacement of the last
// eviction Ready (or SettleTimeout passed).
func (r *Rescheduler) settled(w *workload) bool {
	ready, unsettled := w.ready()
	if s, ok := r.settling[w.uid]; ok {
		if ready >= s.readyAfter && !unsettled {
			delete(r.settling, w.uid)
			return true
		}
		if r.clock.Since(s.at) < r.cfg.SettleTimeout {
			return false
		}
		r.log.Warn("replacement of an evicted pod not Ready in time; acting on the workload again", "workload", w.String(), "timeout", r.cfg.SettleTimeout)
		delete(r.settling, w.uid)
	}
	return !unsettled
}

// evict evicts pod through the Eviction API after checking it against the
// apiserver (not the cache), records an Event and counts the result.
func (r *Rescheduler) evict(ctx context.Context, w *workload, b *budget, pod *v1.Pod, reason, metric, msg string) (Eviction, bool) {
	e := Eviction{Pod: types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}, Node: pod.Spec.NodeName, Reason: reason, Message: msg, DryRun: r.cfg.DryRun}
	live, err := r.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil || live.UID != pod.UID || live.DeletionTimestamp != nil || live.Spec.NodeName != pod.Spec.NodeName {
		r.m.Evictions.WithLabelValues(metric, "gone").Inc()
		r.log.InfoContext(ctx, "pod changed since the cache saw it; not evicting", "pod", e.Pod.String(), "err", err)
		return e, false
	}
	ready, _ := w.ready()
	if r.cfg.DryRun {
		b.spend(w)
		r.m.Evictions.WithLabelValues(metric, "dry_run").Inc()
		r.log.InfoContext(ctx, "dry run: would evict", "pod", e.Pod.String(), "node", e.Node, "reason", reason, "why", msg)
		return e, true
	}
	err = r.client.PolicyV1().Evictions(pod.Namespace).Evict(ctx, &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}},
	})
	switch {
	case apierrors.IsTooManyRequests(err):
		r.m.Evictions.WithLabelValues(metric, "blocked_by_pdb").Inc()
		r.log.InfoContext(ctx, "eviction refused (PodDisruptionBudget)", "pod", e.Pod.String(), "err", err)
		return e, false
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		r.m.Evictions.WithLabelValues(metric, "gone").Inc()
		return e, false
	case err != nil:
		r.m.Evictions.WithLabelValues(metric, "error").Inc()
		r.log.ErrorContext(ctx, "evicting", "pod", e.Pod.String(), "err", err)
		return e, false
	}
	b.spend(w)
	r.settling[w.uid] = settle{at: r.clock.Now(), readyAfter: ready}
	r.m.Evictions.WithLabelValues(metric, "evicted").Inc()
	r.recorder.Eventf(pod, v1.EventTypeNormal, reason, "%s", msg)
	r.log.InfoContext(ctx, "evicted", "pod", e.Pod.String(), "node", e.Node, "reason", reason, "why", msg)
	return e, true
}

// describe lists a placement as site=n pairs.
func describe(sites []string, x placement.Placement) string {
	var parts []string
	for j, n := range x {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", sites[j], n))
		}
	}
	return strings.Join(parts, " ")
}
