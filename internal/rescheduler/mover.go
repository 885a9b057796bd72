package rescheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/defaultplugins"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/policy"
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
	traffic   map[string]float64
	total     float64
	// podNode finds a <from> pod's node, by namespace and name.
	podNode map[types.NamespacedName]string
	// capacity is each site's capacity (the topology file's, the nodes'
	// ning.io/site-capacity labels); badCapacity the malformed labels.
	capacity    map[string]int
	badCapacity []error
	// down are the nodes the healer holds down (TaintNodeDown).
	down map[string]bool
	// nodes and pods are the cycle's, for the filters (built on first use).
	nodes   []*v1.Node
	pods    []*v1.Pod
	filters *defaultplugins.Framework
}

func newView(nodes []*v1.Node, pods []*v1.Pod, store Store, siteLabel string) *view {
	v := &view{index: map[string]int{}, nodeSite: map[string]string{}, podNode: make(map[types.NamespacedName]string, len(pods)),
		nodes: nodes, pods: pods, down: map[string]bool{}}
	for _, n := range nodes {
		if hasDownTaint(n) {
			v.down[n.Name] = true
		}
		site := topology.SiteOf(n.Name, n.Labels, siteLabel)
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
	for _, p := range pods {
		v.podNode[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = p.Spec.NodeName
	}
	fromNodes, bad := policy.NodeCapacities(nodes, func(n *v1.Node) string { return v.nodeSite[n.Name] })
	v.capacity, v.badCapacity = policy.SiteCapacities(store.Capacities(), fromNodes), bad
	v.rtt = store.Matrix(v.sites)
	v.traffic = store.Traffic()
	for _, s := range v.sites {
		v.total += v.traffic[s]
	}
	return v
}

// The view is the rescheduler's policy.Locator.
func (v *view) SiteOfNode(name string) (string, bool) {
	s, ok := v.nodeSite[name]
	return s, ok
}

// fit returns a node of the sites that fits pod's replacement by
// kube-scheduler's own default filters (defaultplugins.Filters) run on the
// node's NodeInfo in a snapshot of the cycle's cluster, or "" and why none
// does. The replacement is pod as its controller would create it again: no
// node and no status. The snapshot is built once per cycle, on first use.
func (v *view) fit(ctx context.Context, pod *v1.Pod, sites []int) (node, why string, err error) {
	if v.filters == nil {
		f, err := defaultplugins.New(ctx, nil, defaultplugins.Filters, v.nodes, v.pods, "")
		if err != nil {
			return "", "", err
		}
		v.filters = f
	}
	var candidates []string
	for _, k := range sites {
		for _, n := range v.siteNodes[k] {
			candidates = append(candidates, n.Name)
		}
	}
	r := pod.DeepCopy()
	r.Spec.NodeName, r.Status = "", v1.PodStatus{}
	return v.filters.Fit(ctx, r, candidates)
}

func (v *view) HasSite(site string) bool { _, ok := v.index[site]; return ok }

func (v *view) NodeOfPod(namespace, name string) (string, bool) {
	n, ok := v.podNode[types.NamespacedName{Namespace: namespace, Name: name}]
	return n, ok
}

// mover moves pods toward their traffic and repairs delay violations. It
// decides under its own lock and evicts outside it.
type mover struct {
	cfg   Config
	store Store
	m     *Metrics
	log   *slog.Logger
	clock clock.PassiveClock

	mu sync.Mutex // guards the state below
	// holds counts consecutive cycles a condition has held, by key.
	holds map[string]int
	// settling is, per workload, the eviction whose replacement it awaits.
	settling map[types.UID]settle
	// moves is, per workload, its last move and the bounces in a row: the
	// cooldown and the bounce backoff (policy.MoveRule) run from it. A new
	// leader restores it from the Events' annotations (restoreMoves).
	moves map[types.UID]policy.LastMove
	// badLabels are pods whose malformed delay labels were counted.
	badLabels map[types.UID]bool

	// recorder, when not nil, records a bounce's Event on the workload.
	recorder record.EventRecorder
}

type settle struct {
	at         time.Time
	readyAfter int // Ready pods the workload must have again
	// before are the workload's pods at the eviction: a pod not among them
	// is a replacement, whose site judges the move (policy.Landed).
	before map[types.UID]bool
	metric string // the eviction's reason label
	judged bool   // the replacement's landing was judged
}

func newMover(cfg Config, store Store, m *Metrics, log *slog.Logger, clk clock.PassiveClock) *mover {
	return &mover{cfg: cfg, store: store, m: m, log: log, clock: clk,
		holds: map[string]int{}, settling: map[types.UID]settle{}, moves: map[types.UID]policy.LastMove{}, badLabels: map[types.UID]bool{}}
}

// proposal is an eviction the mover decided on, for the evictor to make.
type proposal struct {
	request
	w     *workload
	ready int // the workload's Ready pods before the eviction
	// from is the evicted pod's site, to where the replacement is
	// predicted to land ("" for a delay repair: any compliant site).
	from, to string
}

// cycle makes one pass over the cluster as the caches hold it and returns
// the evictions made (or, in dry-run, that would have been).
func (mv *mover) cycle(ctx context.Context, nodes []*v1.Node, pods []*v1.Pod, ev *evictor) []Eviction {
	props := mv.decide(ctx, newView(nodes, pods, mv.store, mv.cfg.SiteLabel), workloads(pods, mv.cfg.SchedulerName))
	b := ev.budget()
	var out []Eviction
	for _, p := range props {
		last := mv.nextMove(p)
		p.annotations = moveAnnotations(p.w.uid, last)
		e, res := ev.evict(ctx, b, p.request)
		if !res.done() {
			continue
		}
		out = append(out, e)
		if res == resultEvicted {
			mv.evicted(p, last)
		}
	}
	return out
}

// nextMove is the memory p's eviction would leave: now, its sites, and the
// bounces in a row so far.
func (mv *mover) nextMove(p proposal) policy.LastMove {
	mv.mu.Lock()
	defer mv.mu.Unlock()
	return policy.LastMove{At: mv.clock.Now(), From: p.from, To: p.to, Bounces: mv.moves[p.w.uid].Bounces}
}

// evicted remembers p's eviction: the replacement to wait for and judge,
// and the move the cooldown runs from.
func (mv *mover) evicted(p proposal, last policy.LastMove) {
	mv.mu.Lock()
	defer mv.mu.Unlock()
	before := make(map[types.UID]bool, len(p.w.pods))
	for _, pod := range p.w.pods {
		before[pod.UID] = true
	}
	mv.settling[p.w.uid] = settle{at: last.At, readyAfter: p.ready, before: before, metric: p.metric}
	mv.moves[p.w.uid] = last
}

// decide judges every workload (at most one proposal each), under the
// mover's lock, without I/O.
func (mv *mover) decide(ctx context.Context, v *view, ws []*workload) []proposal {
	mv.mu.Lock()
	defer mv.mu.Unlock()
	seen := map[string]bool{}
	var out []proposal
	mv.m.WeightedRTT.Reset()
	if len(v.badCapacity) > 0 {
		mv.log.WarnContext(ctx, "malformed "+policy.LabelSiteCapacity+" node labels are ignored", "nodes", len(v.badCapacity), "err", v.badCapacity[0])
	}
	for _, w := range ws {
		if ctx.Err() != nil {
			// Shutting down or no longer the leader: the next term starts
			// afresh, so the holds need no pruning either.
			return nil
		}
		if p, ok := mv.decideWorkload(ctx, w, v, seen); ok {
			out = append(out, p)
		}
	}
	prune(mv.holds, func(k string) bool { return seen[k] })
	live := make(map[types.UID]bool, len(ws))
	for _, w := range ws {
		live[w.uid] = true
	}
	prune(mv.settling, func(uid types.UID) bool { return live[uid] })
	// A move is forgotten with its workload, or BounceBackoffMax after its
	// wait ended: a workload quiet that long starts afresh.
	rule, now := mv.cfg.moveRule(), mv.clock.Now()
	prune(mv.moves, func(uid types.UID) bool {
		return live[uid] && now.Before(rule.Until(mv.moves[uid]).Add(mv.cfg.BounceBackoffMax))
	})
	return out
}

// prune deletes the entries of m whose key keep rejects.
func prune[K comparable, V any](m map[K]V, keep func(K) bool) {
	for k := range m {
		if !keep(k) {
			delete(m, k)
		}
	}
}

// hold counts another cycle for key and reports whether it has now held
// for HoldCycles; seen records which keys were touched this cycle.
func (mv *mover) hold(key string, seen map[string]bool) bool {
	seen[key] = true
	mv.holds[key]++
	return mv.holds[key] >= mv.cfg.HoldCycles
}

// errBadLabels marks a pod whose delay labels do not parse.
var errBadLabels = errors.New("malformed delay labels")

// constraints resolves the pod's delay labels to sites, as the scheduler
// does. An error means the scheduler would place a replacement nowhere: a
// label that does not parse (counted once per pod) or a <from> not found.
func (mv *mover) constraints(ctx context.Context, pod *v1.Pod, v *view) ([]placement.Resolved, error) {
	cs, err := placement.ParseConstraints(pod.Labels)
	if err != nil {
		mv.badLabel(ctx, pod, err)
		return nil, errBadLabels
	}
	return policy.Resolve(cs, pod.Namespace, v)
}

// badLabel counts, once per pod, a malformed delay_<from> or
// ning.io/max-per-site label: the scheduler places no replacement, so the
// rescheduler leaves the workload alone.
func (mv *mover) badLabel(ctx context.Context, pod *v1.Pod, err error) {
	if !mv.badLabels[pod.UID] {
		mv.badLabels[pod.UID] = true
		mv.m.BadLabels.Inc()
		mv.log.WarnContext(ctx, "pod has malformed labels; the rescheduler leaves its workload alone", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}

// usableSites says, for a pod of the workload, which sites the scheduler
// could place it on: a schedulable node, and the delay constraints met under
// the configured unknown-RTT policy, or, by policy's fail-open rule when no
// site is usable, not broken by a measured RTT. By CloudFallback's rule, a
// site with only cloud nodes is usable only when no site with an edge node
// is: the scheduler's CloudFallback score (weight 1000) puts the pod on any
// feasible edge node before a cloud one.
func (mv *mover) usableSites(pod *v1.Pod, cs []placement.Resolved, v *view) []bool {
	j := policy.JudgeSites(cs, v.sites, mv.store, policy.UnknownRTT(mv.cfg.UnknownRTT))
	hasNode, hasEdge := policy.SiteNodes(v.siteNodes, pod, mv.cfg.CloudFallback)
	return policy.UsableSites(j, v.sites, hasNode, hasEdge)
}

// decideWorkload decides for one workload: at most one proposal.
func (mv *mover) decideWorkload(ctx context.Context, w *workload, v *view, seen map[string]bool) (proposal, bool) {
	running := w.running()
	if len(running) == 0 {
		return proposal{}, false
	}
	// A workload with a pod on a node held down (dead or cut off) is the
	// healer's until the node is back or its pods are replaced: an
	// eviction there would kill, once the node is back, a pod that served
	// its site all along.
	for _, p := range running {
		if v.down[p.Spec.NodeName] {
			mv.m.Decisions.WithLabelValues("node_down").Inc()
			return proposal{}, false
		}
	}
	sample := running[0]
	cs, err := mv.constraints(ctx, sample, v)
	if err != nil {
		var unresolved *policy.UnresolvedError
		if errors.As(err, &unresolved) {
			mv.m.Decisions.WithLabelValues("delay_from_unresolved").Inc()
			mv.log.DebugContext(ctx, "a delay constraint's <from> names nothing: the scheduler could place a replacement nowhere; leaving the workload", "workload", w.String(), "why", err)
		}
		return proposal{}, false
	}
	limits, err := policy.LimitsOf(sample, v.capacity)
	if err != nil {
		mv.badLabel(ctx, sample, err)
		return proposal{}, false
	}
	usable := mv.usableSites(sample, cs, v)
	current := make(placement.Placement, len(v.sites))
	for _, p := range running {
		if site, ok := v.nodeSite[p.Spec.NodeName]; ok {
			current[v.index[site]]++
		}
	}
	prob := policy.Problem(v.sites, v.rtt, v.traffic, mv.cfg.PerReplicaRPS)
	limits.Apply(prob)
	prob.Replicas = current.Total()
	ready, _ := w.ready()
	// The placement as it runs is shown every cycle, settling, cooling
	// down or not; the plan only when one is made.
	mv.setWeightedRTT(w, "actual", prob, current)

	// Delay violations, measured (a known RTT over the limit); an unknown
	// RTT alone never evicts.
	var violator *v1.Pod
	var violation string
	if len(cs) > 0 {
		for _, p := range running {
			site := v.nodeSite[p.Spec.NodeName]
			if verdict := placement.CheckSite(cs, site, mv.store, placement.FailOpen); !verdict.OK {
				if mv.hold("delay/"+string(p.UID), seen) && violator == nil {
					violator, violation = p, verdict.Reason
				}
			}
		}
	}
	if !mv.settled(ctx, w, v) {
		mv.m.Decisions.WithLabelValues("settling").Inc()
		return proposal{}, false
	}
	if last, ok := mv.moves[w.uid]; ok && mv.clock.Now().Before(mv.cfg.moveRule().Until(last)) {
		if last.Bounces > 0 {
			mv.m.Decisions.WithLabelValues("bounce_backoff").Inc()
		} else {
			mv.m.Decisions.WithLabelValues("cooldown").Inc()
		}
		return proposal{}, false
	}
	if violator != nil {
		if !anyOther(usable, v.index[v.nodeSite[violator.Spec.NodeName]]) {
			mv.m.Decisions.WithLabelValues("no_compliant_site").Inc()
			mv.log.InfoContext(ctx, "delay constraint broken but no other site meets it; leaving the pod", "pod", violator.Namespace+"/"+violator.Name, "why", violation)
			return proposal{}, false
		}
		var targets []int
		for k, u := range usable {
			if u && v.sites[k] != v.nodeSite[violator.Spec.NodeName] && !limits.Full(v.sites[k], current[k]) {
				targets = append(targets, k)
			}
		}
		if !mv.targetFits(ctx, w, violator, v, targets) {
			return proposal{}, false
		}
		return proposal{request: request{pod: violator, workload: w.uid, reason: ReasonDelayViolation, metric: "delay_violation", msg: violation}, w: w, ready: ready,
			from: v.nodeSite[violator.Spec.NodeName]}, true
	}

	if v.total <= 0 {
		mv.m.Decisions.WithLabelValues("no_traffic").Inc()
		return proposal{}, false
	}
	m, why, ok, err := nextMove(ctx, prob, current, siteLimits{Usable: usable, MinKeep: mv.cfg.MinPerTrafficSite, MinOccupied: mv.cfg.MinPerOccupiedSite})
	if err != nil {
		if ctx.Err() == nil {
			mv.m.Decisions.WithLabelValues("plan_failed").Inc()
			mv.log.ErrorContext(ctx, "planning the workload", "workload", w.String(), "err", err)
		}
		return proposal{}, false
	}
	mv.setWeightedRTT(w, "planned", prob, m.Plan)
	gain := 0.0
	if m.Before > 0 {
		gain = (m.Before - m.Planned) / m.Before
	}
	if gain < mv.cfg.Threshold || m.Before-m.Planned < mv.cfg.MinGainMs || m.Before <= 0 {
		mv.m.Decisions.WithLabelValues("below_threshold").Inc()
		mv.log.DebugContext(ctx, "the plan gains too little to move a pod", "workload", w.String(),
			"weightedRTT", policy.LogMeanRTT(prob, current), "planned", policy.LogMeanRTT(prob, m.Plan), "placement", describe(v.sites, current), "plan", describe(v.sites, m.Plan),
			"gain", gain, "threshold", mv.cfg.Threshold, "minGainMs", mv.cfg.MinGainMs)
		return proposal{}, false
	}
	if !mv.hold("traffic/"+string(w.uid), seen) {
		mv.m.Decisions.WithLabelValues("holding").Inc()
		return proposal{}, false
	}
	if !ok {
		mv.m.Decisions.WithLabelValues("no_improving_move").Inc()
		mv.log.DebugContext(ctx, "plan is better but no single eviction gets closer", "workload", w.String(), "why", why)
		return proposal{}, false
	}
	pod := newestOn(running, v, v.sites[m.From])
	if !mv.targetFits(ctx, w, pod, v, []int{m.To}) {
		return proposal{}, false
	}
	msg := fmt.Sprintf("moving a replica of %s from %s toward %s (now %s, planned %s): %s",
		w.kind+"/"+w.name, v.sites[m.From], v.sites[m.To], describe(v.sites, current), describe(v.sites, m.Plan), policy.DescribeMove(prob, current, m.From, m.To, m.Plan))
	return proposal{request: request{pod: pod, workload: w.uid, reason: ReasonReschedule, metric: "traffic", msg: msg}, w: w, ready: ready,
		from: v.sites[m.From], to: v.sites[m.To]}, true
}

// targetFits reports whether one of the target sites has a node that fits
// the replacement of pod by the scheduler's own filters (view.fit): a move
// whose replacement cannot be placed is a loss, not a gain, so when none
// fits (decision target_unfit), or the filters cannot judge
// (target_check_failed), nothing is evicted. ning's own delay constraints
// were judged by policy already (usableSites).
func (mv *mover) targetFits(ctx context.Context, w *workload, pod *v1.Pod, v *view, targets []int) bool {
	names := make([]string, len(targets))
	for i, k := range targets {
		names[i] = v.sites[k]
	}
	node, why, err := v.fit(ctx, pod, targets)
	if err != nil {
		mv.m.Decisions.WithLabelValues("target_check_failed").Inc()
		mv.log.ErrorContext(ctx, "checking the target for a replacement; not evicting", "workload", w.String(), "pod", pod.Namespace+"/"+pod.Name, "target", strings.Join(names, ","), "err", err)
		return false
	}
	if node == "" {
		mv.m.Decisions.WithLabelValues("target_unfit").Inc()
		mv.log.DebugContext(ctx, "no node of the target fits the replacement by the scheduler's filters; not evicting", "workload", w.String(), "pod", pod.Namespace+"/"+pod.Name, "target", strings.Join(names, ","), "why", why)
		return false
	}
	return true
}

func orAny(site string) string {
	if site == "" {
		return "any compliant site"
	}
	return site
}

// setWeightedRTT sets the workload's weighted-RTT gauge for placement x
// (which: actual or planned), or removes it while some of x's traffic
// crosses a link of unknown RTT: no penalty constant reaches a dashboard.
func (mv *mover) setWeightedRTT(w *workload, which string, p *placement.Problem, x placement.Placement) {
	labels := []string{w.namespace, w.kind + "/" + w.name, which}
	if ms, ok := policy.MeanRTT(p, x); ok {
		mv.m.WeightedRTT.WithLabelValues(labels...).Set(ms)
		return
	}
	mv.m.WeightedRTT.DeleteLabelValues(labels...)
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
// eviction Ready (or SettleTimeout passed). Once the replacement is bound
// it judges where it landed (land).
func (mv *mover) settled(ctx context.Context, w *workload, v *view) bool {
	ready, unsettled := w.ready()
	if s, ok := mv.settling[w.uid]; ok {
		if !s.judged {
			s.judged = mv.land(ctx, w, v, s)
			mv.settling[w.uid] = s
		}
		if ready >= s.readyAfter && !unsettled {
			delete(mv.settling, w.uid)
			return true
		}
		if mv.clock.Since(s.at) < mv.cfg.SettleTimeout {
			return false
		}
		mv.log.WarnContext(ctx, "replacement of an evicted pod not Ready in time; acting on the workload again", "workload", w.String(), "timeout", mv.cfg.SettleTimeout)
		delete(mv.settling, w.uid)
	}
	return !unsettled
}

// land judges where the replacement of the workload's last eviction went,
// once one is bound, and reports whether it could: a bounce (back on the
// site the pod left) is counted and lengthens the workload's backoff; a
// replacement anywhere else clears the bounces in a row.
func (mv *mover) land(ctx context.Context, w *workload, v *view, s settle) bool {
	last, ok := mv.moves[w.uid]
	if !ok {
		return true
	}
	l := policy.Landed(last, s.before, w.pods, v.SiteOfNode)
	if l == policy.LandedPending {
		return false
	}
	next := last.After(l)
	mv.moves[w.uid] = next
	if l == policy.LandedBounced {
		wait := mv.cfg.moveRule().Wait(next)
		mv.m.MoveBounces.WithLabelValues(s.metric).Inc()
		mv.log.WarnContext(ctx, "the replacement landed back on the site its pod was evicted from: the scheduler disagrees with the prediction; backing off",
			"workload", w.String(), "site", last.From, "predicted", last.To, "bounces", next.Bounces, "wait", wait)
		if mv.recorder != nil {
			// Recording does not block (a full queue drops the Event).
			mv.recorder.AnnotatedEventf(w.ref(), moveAnnotations(w.uid, next), v1.EventTypeWarning, ReasonMoveBounced,
				"the replacement of a pod evicted from site %s (toward %s) landed back on %s: %d bounces in a row; no move of this workload for %s from that eviction",
				last.From, orAny(last.To), last.From, next.Bounces, wait)
		}
	}
	return true
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
