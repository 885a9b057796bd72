package dashboard

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/topology"
)

// Defaults of Options.
const (
	DefaultSchedulerName = "ning-scheduler"
	DefaultHistory       = 360
	DefaultInterval      = 5 * time.Second
	DefaultDecisions     = 50
)

// Options tune a Collector. The zero value of a field means its default.
type Options struct {
	// SiteLabel is the node label naming a node's site
	// (topology.DefaultSiteLabel).
	SiteLabel string
	// SchedulerName selects the pods shown: those with this
	// spec.schedulerName (DefaultSchedulerName).
	SchedulerName string
	// Namespace, when not empty, limits the pods and Events shown to one
	// namespace (nodes and sites are the whole cluster's).
	Namespace string
	// History is how many samples of replicas per site are kept
	// (DefaultHistory), one every Interval (DefaultInterval).
	History  int
	Interval time.Duration
	// Decisions is how many recent decisions a snapshot lists (DefaultDecisions).
	Decisions int
	// PerReplicaRPS is how much traffic one replica serves when the weighted
	// mean RTT is computed, as the scheduler's per-replica rate; 0 means no limit.
	PerReplicaRPS float64
	// DelayLayersMs are the delays (ms) whose delay zones a snapshot shows,
	// besides each distinct delay_<from> value on the pods shown (the
	// scheduler's delayLayersMs).
	DelayLayersMs []float64
	// Clock drives the sampling and stamps snapshots (the real clock).
	Clock clock.WithTicker
	// Measured, when set, is shown beside the comparison (LoadMeasured).
	Measured *Measured
}

func (o Options) withDefaults() (Options, error) {
	if o.History < 0 {
		return o, fmt.Errorf("history %d: want a positive number of samples", o.History)
	}
	if o.Interval < 0 {
		return o, fmt.Errorf("interval %v: want a positive duration", o.Interval)
	}
	if math.IsNaN(o.PerReplicaRPS) || math.IsInf(o.PerReplicaRPS, 0) || o.PerReplicaRPS < 0 {
		return o, fmt.Errorf("per-replica rate %v: want a finite number of 0 or more", o.PerReplicaRPS)
	}
	if o.Decisions < 0 {
		return o, fmt.Errorf("decisions %d: want a positive number", o.Decisions)
	}
	if o.SiteLabel == "" {
		o.SiteLabel = topology.DefaultSiteLabel
	}
	if o.SchedulerName == "" {
		o.SchedulerName = DefaultSchedulerName
	}
	if o.History == 0 {
		o.History = DefaultHistory
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Decisions == 0 {
		o.Decisions = DefaultDecisions
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return o, nil
}

// Collector keeps a live view of a cluster and a topology store from
// informers on nodes, ning-scheduled pods and Events. It is safe for
// concurrent use.
type Collector struct {
	opts  Options
	store Store

	nodeFactory, podFactory informers.SharedInformerFactory
	eventFactory            informers.SharedInformerFactory
	nodes                   corelisters.NodeLister
	pods                    corelisters.PodLister
	events                  corelisters.EventLister
	hasSynced               []cache.InformerSynced

	running atomic.Bool
	synced  chan struct{}

	mu      sync.Mutex
	history []Sample // ring buffer of up to opts.History samples
	next    int      // where the next sample goes once the ring is full
}

// NewCollector returns a collector over client and store; Run starts it.
func NewCollector(client kubernetes.Interface, store Store, o Options) (*Collector, error) {
	if client == nil || store == nil {
		return nil, errors.New("dashboard: a Kubernetes client and a topology store are required")
	}
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	c := &Collector{opts: o, store: store, synced: make(chan struct{})}
	// Only ning's pods are listed: the API server filters on
	// spec.schedulerName, so a large cluster's other pods never reach us.
	c.nodeFactory = informers.NewSharedInformerFactory(client, 0)
	c.podFactory = informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(o.Namespace),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("spec.schedulerName", o.SchedulerName).String()
		}))
	c.eventFactory = informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(o.Namespace))
	nodes := c.nodeFactory.Core().V1().Nodes()
	events := c.eventFactory.Core().V1().Events()
	pods := c.podFactory.Core().V1().Pods()
	c.nodes, c.events, c.pods = nodes.Lister(), events.Lister(), pods.Lister()
	c.hasSynced = []cache.InformerSynced{nodes.Informer().HasSynced, events.Informer().HasSynced, pods.Informer().HasSynced}
	return c, nil
}

// Run starts the informers, waits until they have listed the cluster, then
// samples the replicas per site every Options.Interval until ctx is done. It
// returns nil once ctx is done after the informers synced, and an error if
// they never did. Call it once.
func (c *Collector) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("dashboard: the collector is already running")
	}
	factories := []informers.SharedInformerFactory{c.nodeFactory, c.podFactory, c.eventFactory}
	for _, f := range factories {
		f.Start(ctx.Done())
	}
	defer func() {
		for _, f := range factories {
			f.Shutdown()
		}
	}()
	if !cache.WaitForCacheSync(ctx.Done(), c.hasSynced...) {
		return fmt.Errorf("dashboard: listing nodes, pods and events: %w", context.Cause(ctx))
	}
	close(c.synced)
	t := c.opts.Clock.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		if err := c.sample(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

// WaitSynced blocks until the informers have listed the cluster or ctx is done.
func (c *Collector) WaitSynced(ctx context.Context) error {
	select {
	case <-c.synced:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("dashboard: waiting for the cluster to be listed: %w", context.Cause(ctx))
	}
}

// Synced reports whether the informers have listed the cluster.
func (c *Collector) Synced() bool {
	select {
	case <-c.synced:
		return true
	default:
		return false
	}
}

// Healthy is nil once the collector has listed the cluster (for /healthz).
func (c *Collector) Healthy() error {
	if !c.Synced() {
		return errors.New("the dashboard has not listed the cluster yet")
	}
	return nil
}

// Snapshot returns the current view. Before the informers synced it is
// empty with Synced false; if the caches cannot be read, empty with Error set.
func (c *Collector) Snapshot() Snapshot {
	now := c.opts.Clock.Now()
	if !c.Synced() {
		return Snapshot{Time: now}
	}
	s, err := c.current()
	if err != nil {
		return Snapshot{Time: now, Error: err.Error()}
	}
	s.Time, s.Synced, s.Measured = now, true, c.opts.Measured
	c.mu.Lock()
	s.History = c.historyLocked()
	c.mu.Unlock()
	return s
}

func (c *Collector) current() (Snapshot, error) {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return Snapshot{}, fmt.Errorf("listing nodes: %w", err)
	}
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		return Snapshot{}, fmt.Errorf("listing pods: %w", err)
	}
	events, err := c.events.List(labels.Everything())
	if err != nil {
		return Snapshot{}, fmt.Errorf("listing events: %w", err)
	}
	// The field selector already chose the pods; a fake or filtering-blind
	// client may not, so check again.
	mine := pods[:0:0]
	for _, p := range pods {
		if p.Spec.SchedulerName == c.opts.SchedulerName {
			mine = append(mine, p)
		}
	}
	return build(inputs{nodes: nodes, pods: mine, events: events, siteLabel: c.opts.SiteLabel, decisions: c.opts.Decisions, perReplica: c.opts.PerReplicaRPS, delayLayers: c.opts.DelayLayersMs}, c.store), nil
}

// sample records the replicas per site now.
func (c *Collector) sample() error {
	s, err := c.current()
	if err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	smp := Sample{Time: c.opts.Clock.Now(), Replicas: map[string]int{}}
	for _, st := range s.Sites {
		if st.Replicas > 0 {
			smp.Replicas[st.Name] = st.Replicas
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.history) < c.opts.History {
		c.history = append(c.history, smp)
		return nil
	}
	c.history[c.next] = smp
	c.next = (c.next + 1) % c.opts.History
	return nil
}

func (c *Collector) historyLocked() []Sample {
	out := make([]Sample, 0, len(c.history))
	out = append(out, c.history[c.next:]...)
	return append(out, c.history[:c.next]...)
}
