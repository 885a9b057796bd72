// Package rescheduler moves running pods toward their traffic and heals after
// node failures. Every cycle it plans each workload scheduled by ning with the
// same planner and marginal gain as the scheduler, and evicts, through the
// policy/v1 Eviction API and within limits, the one pod whose replacement the
// scheduler will put where it lowers the weighted RTT. Separately it watches
// node Leases and Ready conditions, and deletes the pods of a node that has
// gone silent so that they are replaced at once.
package rescheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/policy"
)

// Event reasons the rescheduler records on pods and nodes.
const (
	ReasonReschedule     = "NingReschedule"
	ReasonDelayViolation = "NingDelayViolation"
	ReasonNodeDown       = "NingNodeDown"
	ReasonNodeUp         = "NingNodeUp"
	// ReasonNotRescued is on a pod of a down node that ning leaves there
	// (a bare pod, or a StatefulSet's without --allow-statefulset-force).
	ReasonNotRescued = "NingNotRescued"
	// ReasonNodeCutOff is on a node that only the control plane has lost:
	// tainted, its pods kept. ReasonPartitionSurge is on a Deployment given
	// replicas for such a node's pods, or having them taken back.
	ReasonNodeCutOff     = "NingNodeCutOff"
	ReasonPartitionSurge = "NingPartitionSurge"
	// ReasonBadAutonomy is on a node whose policy.AutonomyAnnotation does
	// not parse.
	ReasonBadAutonomy = "NingBadAutonomy"
)

// TaintNodeDown is the NoSchedule taint the rescheduler puts on a node it
// holds down, so that replacements go elsewhere, and takes off when the node
// is back.
const TaintNodeDown = "ning.io/node-down"

// Config tunes the rescheduler. DefaultConfig gives the defaults.
type Config struct {
	// Interval is the time between rescheduling cycles.
	Interval time.Duration
	// Threshold is the relative drop in a workload's weighted RTT (0.1: 10 %)
	// that the plan must promise before the rescheduler acts.
	Threshold float64
	// MinGainMs is the smallest absolute drop in weighted RTT (ms) worth a
	// move: a relative threshold alone would chase noise on tiny RTTs.
	MinGainMs float64
	// HoldCycles is how many consecutive cycles the gain (or a delay
	// violation) must hold before the rescheduler acts.
	HoldCycles int
	// MinPerTrafficSite is the fewest pods of a workload a site with traffic
	// keeps: the rescheduler never evicts below it.
	MinPerTrafficSite int
	// MinPerOccupiedSite is the fewest pods of a workload a site that runs
	// one keeps, traffic or not: 1 is seed 000's "keeping at least 1".
	// The planner keeps them too (placement.Problem.Min).
	MinPerOccupiedSite int
	// MaxPerCycle, MaxPerNamespace and MaxPerWorkload limit evictions in one cycle.
	MaxPerCycle, MaxPerNamespace, MaxPerWorkload int
	// MaxPerNode limits evictions from one node in one cycle; 0 is no limit.
	MaxPerNode int
	// SettleTimeout is how long the rescheduler waits for an evicted pod's
	// replacement to be Ready before it acts on the workload again anyway.
	SettleTimeout time.Duration
	// MoveCooldown is how long a workload is left alone after one of its
	// pods was evicted (counted from the eviction, after the replacement is
	// Ready); 0 is none.
	MoveCooldown time.Duration
	// BounceBackoffMax bounds the wait after bounces: a replacement that
	// lands back on the site its pod was evicted from doubles the wait,
	// starting from twice the cooldown (at least one Interval).
	BounceBackoffMax time.Duration
	// EvictionQPS limits the rate of evictions (not of node-down
	// deletions) over all workloads, with bursts of EvictionBurst; 0 is no
	// limit.
	EvictionQPS   float64
	EvictionBurst int
	// NodeDownAfter is how long a node's Lease may go unrenewed, or its Ready
	// condition stay not True, before the node is down.
	NodeDownAfter time.Duration
	// NodeCheckInterval is how often nodes are checked (from the caches, so
	// cheaply); 0 takes a second, or a quarter of NodeDownAfter if shorter.
	NodeCheckInterval time.Duration
	// MaxDownFraction: when more than this fraction of the nodes (and more
	// than one) look down at once, the rescheduler suspects its own view or
	// the control plane and deletes nothing.
	MaxDownFraction float64
	// DataPlaneWindow is how recent the data plane's last sign of a silent
	// node's site (a probe that reached it, a report from it) must be, and
	// after the node's Lease was due, for the node to be cut off rather
	// than dead; 0 turns partition detection off.
	DataPlaneWindow time.Duration
	// PartitionAutonomy bounds how long a cut-off node keeps its pods,
	// counted from its last renewal; a node's own
	// node.openyurt.io/autonomy-duration takes its place. 0: a partition
	// is a death.
	PartitionAutonomy time.Duration
	// AllowStatefulSetForce lets the rescheduler force-delete StatefulSet
	// pods on a down node (risk: two pods with one identity if the node is
	// only partitioned).
	AllowStatefulSetForce bool
	// DryRun logs every eviction and deletion instead of making it.
	DryRun bool
	// SchedulerName selects the pods the rescheduler manages.
	SchedulerName string
	// SiteLabel is the node label that names its site.
	SiteLabel string
	// PerReplicaRPS is the traffic one replica serves (0: no limit), as in
	// the TrafficLatency plugin's args.
	PerReplicaRPS float64
	// UnknownRTT is the NetworkLatency plugin's unknownRTT: the rescheduler
	// predicts where the scheduler may put a replacement under it.
	UnknownRTT configv1alpha1.UnknownRTTPolicy
	// CloudFallback is the CloudFallback plugin's args: the scheduler puts a
	// pod on a cloud node only when no edge node fits, so the rescheduler
	// plans, and predicts replacements, on the edge sites alone while one
	// of them can take the pod.
	CloudFallback configv1alpha1.CloudFallbackArgs
	// FailoverReserve keeps placeholder pods for the workloads annotated
	// ning.io/failover-reserve (seed 002's failover capacity), in
	// PlaceholderNamespace, of PlaceholderPriorityClass (low, preemption
	// Never), running PlaceholderImage; checked every NodeCheckInterval.
	FailoverReserve          bool
	PlaceholderNamespace     string
	PlaceholderPriorityClass string
	PlaceholderImage         string
}

// DefaultConfig returns the defaults: a 30 s cycle, 10 % gain held for 3
// cycles, one pod of a workload at a time and then 2 min of cooldown (up to
// an hour after bounces), at most one eviction a second (bursts of 5),
// nodes down after 20 s, cloud nodes labelled kubernetes.io/role=cloud (as
// CloudFallback's defaults).
func DefaultConfig() Config {
	return Config{
		Interval:          30 * time.Second,
		Threshold:         0.1,
		MinGainMs:         1,
		HoldCycles:        3,
		MinPerTrafficSite: 1,
		MaxPerCycle:       5,
		MaxPerNamespace:   2,
		MaxPerWorkload:    1,
		SettleTimeout:     5 * time.Minute,
		MoveCooldown:      2 * time.Minute,
		BounceBackoffMax:  time.Hour,
		EvictionQPS:       1,
		EvictionBurst:     5,
		NodeDownAfter:     20 * time.Second,
		MaxDownFraction:   0.5,
		DataPlaneWindow:   time.Minute,
		PartitionAutonomy: 10 * time.Minute,
		SchedulerName:     "ning-scheduler",
		SiteLabel:         v1.LabelTopologyZone,
		UnknownRTT:        configv1alpha1.FailClosed,
		CloudFallback:     configv1alpha1.CloudFallbackArgs{CloudLabel: "kubernetes.io/role", CloudValue: "cloud"},

		PlaceholderNamespace:     "ning-placeholders",
		PlaceholderPriorityClass: "ning-placeholder",
		PlaceholderImage:         "registry.k8s.io/pause:3.10",
	}
}

// Validate says what is wrong with c, naming the field.
func (c Config) Validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Interval <= 0, "interval %v: want a positive duration", c.Interval)
	check(!(c.Threshold >= 0 && c.Threshold < 1), "threshold %v: want a fraction in [0, 1)", c.Threshold)
	check(!(c.MinGainMs >= 0), "min gain %v ms: want 0 or more", c.MinGainMs)
	check(c.HoldCycles < 1, "hold cycles %d: want at least 1", c.HoldCycles)
	check(c.MinPerTrafficSite < 0, "min per traffic site %d: want 0 or more", c.MinPerTrafficSite)
	check(c.MinPerOccupiedSite < 0, "min per occupied site %d: want 0 or more", c.MinPerOccupiedSite)
	check(c.MaxPerCycle < 1 || c.MaxPerNamespace < 1 || c.MaxPerWorkload < 1,
		"eviction limits %d per cycle, %d per namespace, %d per workload: want at least 1 each", c.MaxPerCycle, c.MaxPerNamespace, c.MaxPerWorkload)
	check(c.SettleTimeout <= 0, "settle timeout %v: want a positive duration", c.SettleTimeout)
	check(c.MoveCooldown < 0, "move cooldown %v: want 0 (none) or a positive duration", c.MoveCooldown)
	check(c.BounceBackoffMax <= 0, "bounce backoff max %v: want a positive duration", c.BounceBackoffMax)
	check(!(c.EvictionQPS >= 0) || math.IsInf(c.EvictionQPS, 0), "eviction QPS %v: want 0 (no limit) or a positive rate", c.EvictionQPS)
	check(c.EvictionQPS > 0 && c.EvictionBurst < 1, "eviction burst %d: want at least 1 with an eviction QPS", c.EvictionBurst)
	check(c.MaxPerNode < 0, "eviction limit %d per node: want 0 (none) or more", c.MaxPerNode)
	check(c.UnknownRTT != configv1alpha1.FailClosed && c.UnknownRTT != configv1alpha1.FailOpen,
		"unknown RTT policy %q: want %s or %s", c.UnknownRTT, configv1alpha1.FailClosed, configv1alpha1.FailOpen)
	check(c.NodeDownAfter <= 0, "node down after %v: want a positive duration", c.NodeDownAfter)
	check(c.NodeCheckInterval < 0, "node check interval %v: want 0 (automatic) or a positive duration", c.NodeCheckInterval)
	check(c.DataPlaneWindow < 0, "data plane window %v: want 0 (off) or a positive duration", c.DataPlaneWindow)
	check(c.PartitionAutonomy < 0, "partition autonomy %v: want 0 (a partition is a death) or a positive duration", c.PartitionAutonomy)
	check(!(c.MaxDownFraction > 0 && c.MaxDownFraction <= 1), "max down fraction %v: want a fraction in (0, 1]", c.MaxDownFraction)
	check(c.SchedulerName == "", "scheduler name: must not be empty")
	check(c.SiteLabel == "", "site label: must not be empty")
	check(!(c.PerReplicaRPS >= 0), "per-replica RPS %v: want 0 or more", c.PerReplicaRPS)
	check(c.FailoverReserve && (c.PlaceholderNamespace == "" || c.PlaceholderPriorityClass == "" || c.PlaceholderImage == ""),
		"failover reserve: placeholder namespace %q, priority class %q and image %q must not be empty", c.PlaceholderNamespace, c.PlaceholderPriorityClass, c.PlaceholderImage)
	for _, e := range c.CloudFallback.Validate(field.NewPath("cloudFallback")) {
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// moveRule is the cooldown and bounce backoff of c, for policy.MoveRule.
func (c Config) moveRule() policy.MoveRule {
	return policy.MoveRule{Cooldown: c.MoveCooldown, BackoffBase: max(2*c.MoveCooldown, c.Interval), BackoffMax: c.BounceBackoffMax}
}

// partitionRule is how c tells a cut-off node from a dead one.
func (c Config) partitionRule() policy.PartitionRule {
	return policy.PartitionRule{Window: c.DataPlaneWindow, Autonomy: c.PartitionAutonomy}
}

// Store is what the rescheduler reads: RTTs and traffic per site, the
// sites' capacities from a topology file, and the data plane's last sign of
// each site.
type Store interface {
	placement.RTTLookup
	Matrix(sites []string) [][]float64
	Traffic() map[string]float64
	Capacities() map[string]int
	LastHeard(site string) time.Time
}

// Rescheduler acts on one cluster: a mover (traffic and delay violations,
// every Interval) and a healer (node failures, every NodeCheckInterval), each
// deciding under its own lock and acting outside it through one evictor. Run
// it under Elect when more than one replica runs.
type Rescheduler struct {
	client kubernetes.Interface
	cfg    Config
	m      *Metrics
	log    *slog.Logger
	clock  clock.WithTicker

	factory, leaseFactory informers.SharedInformerFactory
	pods                  corelisters.PodLister
	nodes                 corelisters.NodeLister
	leases                coordlisters.LeaseLister
	broadcaster           record.EventBroadcaster

	mover    *mover
	healer   *healer
	evictor  *evictor
	reserver *reserver // nil unless FailoverReserve

	// apiTrouble is the last time a watch on, or a request to, the
	// apiserver failed.
	apiMu      sync.Mutex
	apiTrouble time.Time
}

// New returns a rescheduler; Run starts it.
func New(client kubernetes.Interface, store Store, cfg Config, m *Metrics, log *slog.Logger, clk clock.WithTicker) (*Rescheduler, error) {
	if cfg.UnknownRTT == "" {
		cfg.UnknownRTT = configv1alpha1.FailClosed
	}
	cfg.CloudFallback.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.NodeCheckInterval == 0 {
		cfg.NodeCheckInterval = min(cfg.NodeDownAfter/4, time.Second)
	}
	r := &Rescheduler{client: client, cfg: cfg, m: m, log: log, clock: clk}
	r.factory = informers.NewSharedInformerFactory(client, 0)
	r.leaseFactory = informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(v1.NamespaceNodeLease))
	podInf, nodeInf := r.factory.Core().V1().Pods(), r.factory.Core().V1().Nodes()
	leaseInf := r.leaseFactory.Coordination().V1().Leases()
	depInf := r.factory.Apps().V1().Deployments()
	for _, inf := range []cache.SharedIndexInformer{podInf.Informer(), nodeInf.Informer(), leaseInf.Informer(), depInf.Informer()} {
		if err := inf.SetWatchErrorHandlerWithContext(r.watchError); err != nil {
			return nil, fmt.Errorf("rescheduler informers: %w", err)
		}
	}
	r.pods, r.nodes, r.leases = podInf.Lister(), nodeInf.Lister(), leaseInf.Lister()
	r.broadcaster = record.NewBroadcaster()
	recorder := r.broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: eventSource})
	r.evictor = &evictor{client: client, dryRun: cfg.DryRun, m: m, log: log, recorder: recorder,
		limits: Limits{Total: cfg.MaxPerCycle, PerNamespace: cfg.MaxPerNamespace, PerNode: cfg.MaxPerNode, PerWorkload: cfg.MaxPerWorkload},
		rate:   evictionRate(cfg), clock: clk}
	r.mover = newMover(cfg, store, m, log, clk)
	r.mover.recorder = recorder
	r.healer = newHealer(cfg, client, m, log, clk, recorder)
	r.healer.heard = store.LastHeard
	r.healer.deployments = depInf.Lister()
	if cfg.FailoverReserve {
		r.reserver = &reserver{cfg: cfg, client: client, store: store, m: m.Reserve, log: log.With("loop", "reserve"), bad: map[string]bool{}}
	}
	if _, err := leaseInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { r.healer.sawLease() },
		UpdateFunc: func(any, any) { r.healer.sawLease() },
	}); err != nil {
		return nil, fmt.Errorf("lease informer: %w", err)
	}
	return r, nil
}

// watchError notes a failed watch: until the caches have been whole again
// for a while, the rescheduler does not act on them.
func (r *Rescheduler) watchError(ctx context.Context, rf *cache.Reflector, err error) {
	r.noteAPITrouble()
	cache.DefaultWatchErrorHandler(ctx, rf, err)
}

// noteAPITrouble records a failed watch or request to the apiserver.
func (r *Rescheduler) noteAPITrouble() {
	r.apiMu.Lock()
	r.apiTrouble = r.clock.Now()
	r.apiMu.Unlock()
}

// recovering reports whether a watch or request failed within d.
func (r *Rescheduler) recovering(d time.Duration) bool {
	r.apiMu.Lock()
	defer r.apiMu.Unlock()
	return !r.apiTrouble.IsZero() && r.clock.Since(r.apiTrouble) < d
}

// Cycle makes one rescheduling pass and returns the evictions it made: it
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
	nodes, pods, err := r.cached()
	if err != nil {
		r.log.ErrorContext(ctx, "rescheduling cycle", "err", err)
		return nil
	}
	return r.mover.cycle(ctx, nodes, pods, r.evictor)
}

// cached lists the nodes and pods in the caches.
func (r *Rescheduler) cached() ([]*v1.Node, []*v1.Pod, error) {
	nodes, err := r.nodes.List(labels.Everything())
	if err != nil {
		return nil, nil, fmt.Errorf("listing nodes: %w", err)
	}
	pods, err := r.pods.List(labels.Everything())
	if err != nil {
		return nil, nil, fmt.Errorf("listing pods: %w", err)
	}
	return nodes, pods, nil
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
	start := r.clock.Now()
	defer func() { r.m.NodeCheckDuration.Observe(r.clock.Since(start).Seconds()) }()
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
	nodes, pods, err := r.cached()
	if err != nil {
		r.log.ErrorContext(ctx, "checking nodes", "err", err)
		return nil
	}
	leases := make(map[string]nodeLease, len(nodes))
	for _, n := range nodes {
		if l, err := r.leases.Leases(v1.NamespaceNodeLease).Get(n.Name); err == nil && l.Spec.RenewTime != nil {
			nl := nodeLease{renew: l.Spec.RenewTime.Time}
			if d := l.Spec.LeaseDurationSeconds; d != nil && *d > 0 {
				nl.duration = time.Duration(*d) * time.Second
			}
			leases[n.Name] = nl
		}
	}
	return r.healer.act(ctx, r.healer.decide(ctx, nodes, leases, pods), r.evictor)
}

// Run starts the informers and acts until ctx is done: a rescheduling cycle
// every Interval and a node check every NodeCheckInterval.
func (r *Rescheduler) Run(ctx context.Context) error {
	r.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: r.client.CoreV1().Events("")})
	defer r.broadcaster.Shutdown()
	r.factory.Start(ctx.Done())
	r.leaseFactory.Start(ctx.Done())
	defer r.factory.Shutdown()
	defer r.leaseFactory.Shutdown()
	for _, f := range []informers.SharedInformerFactory{r.factory, r.leaseFactory} {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return fmt.Errorf("rescheduler informers: %v did not sync: %w", typ, context.Cause(ctx))
			}
		}
	}
	r.restoreMoves(ctx)
	r.m.Leader.Set(1)
	defer r.m.Leader.Set(0)
	r.log.InfoContext(ctx, "rescheduler acting", "interval", r.cfg.Interval, "threshold", r.cfg.Threshold,
		"holdCycles", r.cfg.HoldCycles, "nodeDownAfter", r.cfg.NodeDownAfter, "dryRun", r.cfg.DryRun)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		every(ctx, r.clock, r.cfg.NodeCheckInterval, func() { r.CheckNodes(ctx) })
	}()
	if r.reserver != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			every(ctx, r.clock, r.cfg.NodeCheckInterval, func() { r.KeepReserve(ctx) })
		}()
	}
	every(ctx, r.clock, r.cfg.Interval, func() { r.Cycle(ctx) })
	wg.Wait()
	return nil
}

func every(ctx context.Context, clk clock.WithTicker, d time.Duration, f func()) {
	t := clk.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			f()
		}
	}
}

// Eviction is one eviction or deletion the rescheduler made (or, in dry-run,
// would have made).
type Eviction struct {
	Pod    types.NamespacedName
	Node   string
	Reason string // ReasonReschedule, ReasonDelayViolation or ReasonNodeDown
	// Message says why, for a person: the sites and RTTs involved.
	Message string
	DryRun  bool
}

// workload is the pods of one ReplicaSet or StatefulSet scheduled by ning.
type workload struct {
	uid       types.UID
	namespace string
	kind      string
	name      string
	pods      []*v1.Pod // all, bound or not
}

func (w *workload) String() string { return w.namespace + "/" + w.kind + "/" + w.name }

// ref is the workload's controller, for an Event on it.
func (w *workload) ref() *v1.ObjectReference {
	return &v1.ObjectReference{APIVersion: "apps/v1", Kind: w.kind, Namespace: w.namespace, Name: w.name, UID: w.uid}
}

// running are the bound pods that are not terminating.
func (w *workload) running() []*v1.Pod {
	var out []*v1.Pod
	for _, p := range w.pods {
		if p.Spec.NodeName != "" && policy.Counts(p) {
			out = append(out, p)
		}
	}
	return out
}

// ready counts the running pods that are Ready; unsettled is true when a
// pod is pending, starting or terminating.
func (w *workload) ready() (n int, unsettled bool) {
	for _, p := range w.pods {
		switch {
		case p.DeletionTimestamp != nil, p.Spec.NodeName == "":
			unsettled = true
		case p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed:
		case podReady(p):
			n++
		default:
			unsettled = true
		}
	}
	return n, unsettled
}

func podReady(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// workloads groups ning's pods by the controller that replaces them
// (policy.WorkloadOf), sorted for a stable order. A bare pod is not
// replaced once evicted, and is left out.
func workloads(pods []*v1.Pod, schedulerName string) []*workload {
	byUID := map[types.UID]*workload{}
	for _, p := range pods {
		if p.Spec.SchedulerName != schedulerName {
			continue
		}
		ref := policy.WorkloadOf(p)
		if !ref.Replaced() {
			continue
		}
		w := byUID[ref.UID]
		if w == nil {
			w = &workload{uid: ref.UID, namespace: p.Namespace, kind: ref.Kind, name: ref.Name}
			byUID[ref.UID] = w
		}
		w.pods = append(w.pods, p)
	}
	out := make([]*workload, 0, len(byUID))
	for _, w := range byUID {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
