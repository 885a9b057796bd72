// Package extender serves ning's placement decisions to a stock kube-scheduler
// through the scheduler extender HTTP API (k8s.io/kube-scheduler/extender/v1):
// /filter applies the delay constraints and load thresholds, /prioritize ranks
// nodes by traffic-weighted RTT gain, load and cloud fallback, /bind binds a
// pod and counts it at once among its workload's replicas. It reads the
// same topology store and calls the same placement code as ning's scheduler
// plugins (NetworkLatency, TrafficLatency, NodeLoad, CloudFallback), so the
// two agree about where a pod belongs.
package extender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
	"k8s.io/utils/clock"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/logging"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/plugins/siteindex"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/topology"
)

// Store is what the extender reads; *topology.Store implements it.
type Store interface {
	placement.RTTLookup
	Matrix(sites []string) [][]float64
	Traffic() map[string]float64
	RTTVersion() uint64
	Load(node string) (topology.Load, bool)
	// Capacities are the sites' capacities from a topology file.
	Capacities() map[string]int
	// MaxSites bounds the sites an RTT matrix is built over.
	MaxSites() int
}

// Defaults of Limits, sized to the chart's 512Mi memory limit: MaxInFlight
// requests of MaxBodyBytes each, decoded, fit in it several times over.
const (
	// DefaultMaxNodes is twice the largest cluster upstream tests
	// kube-scheduler at (5,000 nodes).
	DefaultMaxNodes = 10_000
	// DefaultMaxLabelBytes is above the longest label the apiserver accepts
	// (a 253-byte prefix, "/", a 63-byte name and a 63-byte value).
	DefaultMaxLabelBytes = 400
	// DefaultMaxInFlight is how many requests are answered at once:
	// kube-scheduler calls an extender for one pod at a time per profile.
	DefaultMaxInFlight = 4
	// DefaultMaxBindsInFlight is how many /bind requests are answered at
	// once: kube-scheduler binds in a goroutine per pod, so a burst's binds
	// overlap each other and the next pods' /filter calls. A bind's body is
	// a few hundred bytes; its cost is the apiserver's round trip.
	DefaultMaxBindsInFlight = 16
	// DefaultMaxBodyBytes is the default request body limit: enough for the
	// pod and DefaultMaxNodes node names, or a few thousand full Node objects.
	DefaultMaxBodyBytes = 8 << 20
	// DefaultLogEvery is how often one source's refusals of one reason are
	// logged (every one is counted).
	DefaultLogEvery = time.Minute
	// maxNodeName is the longest node name: a DNS subdomain.
	maxNodeName = 253
)

// Limits bound what one request may cost. Zero values take the defaults.
type Limits struct {
	// MaxNodes is the most nodes a request may list; more get 413
	// (reason too_many_nodes).
	MaxNodes int
	// MaxLabelBytes bounds a label's key plus value. A pod label over it
	// rejects every node with one short reason naming the label and its
	// length (reason label_too_long); a node's site label over it gets the
	// request a 400.
	MaxLabelBytes int
	// MaxInFlight is how many /filter and /prioritize requests are answered
	// at once; more get 429 (reason in_flight) before their body is read.
	MaxInFlight int
	// MaxBindsInFlight is how many /bind requests are answered at once,
	// apart from MaxInFlight; more get 429 (reason in_flight).
	MaxBindsInFlight int
	// MaxBodyBytes limits a request body; larger ones get 413 (too_large).
	MaxBodyBytes int64
	// LogEvery is how often refusals of one reason from one source are
	// logged.
	LogEvery time.Duration
}

// SetDefaults fills unset limits.
func (l *Limits) SetDefaults() {
	if l.MaxNodes == 0 {
		l.MaxNodes = DefaultMaxNodes
	}
	if l.MaxLabelBytes == 0 {
		l.MaxLabelBytes = DefaultMaxLabelBytes
	}
	if l.MaxInFlight == 0 {
		l.MaxInFlight = DefaultMaxInFlight
	}
	if l.MaxBindsInFlight == 0 {
		l.MaxBindsInFlight = DefaultMaxBindsInFlight
	}
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.LogEvery == 0 {
		l.LogEvery = DefaultLogEvery
	}
}

// Validate checks the limits; call SetDefaults first.
func (l *Limits) Validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for name, v := range map[string]int64{"maxNodes": int64(l.MaxNodes), "maxLabelBytes": int64(l.MaxLabelBytes),
		"maxInFlight": int64(l.MaxInFlight), "maxBindsInFlight": int64(l.MaxBindsInFlight), "maxBodyBytes": l.MaxBodyBytes, "logEvery": int64(l.LogEvery)} {
		if v <= 0 {
			errs = append(errs, field.Invalid(path.Child(name), v, "must be positive"))
		}
	}
	return errs
}

// Config holds the plugins' arguments the extender applies. Zero values take
// the plugins' defaults.
type Config struct {
	NetworkLatency configv1alpha1.NetworkLatencyArgs
	TrafficLatency configv1alpha1.TrafficLatencyArgs
	NodeLoad       configv1alpha1.NodeLoadArgs
	CloudFallback  configv1alpha1.CloudFallbackArgs
	// Weights are the profile's score weights the /prioritize score combines
	// TrafficLatency's and NodeLoad's parts by (CloudFallback's is not used:
	// a cloud node always scores 0). Zero takes ning's profile's.
	Weights policy.Weights
	// Limits bound what one request may cost.
	Limits Limits
	// AssumeFor is how long a pod bound through /bind counts as assumed
	// while the pod informer has not seen it bound; 0 means
	// DefaultAssumeFor.
	AssumeFor time.Duration
}

// SetDefaults fills unset fields with the plugins' defaults.
func (c *Config) SetDefaults() {
	c.NetworkLatency.SetDefaults()
	c.TrafficLatency.SetDefaults()
	c.NodeLoad.SetDefaults()
	c.CloudFallback.SetDefaults()
	c.Limits.SetDefaults()
	if c.AssumeFor == 0 {
		c.AssumeFor = DefaultAssumeFor
	}
	if c.Weights == (policy.Weights{}) {
		c.Weights = policy.DefaultWeights()
	}
}

// Validate checks the configuration; call SetDefaults first.
func (c *Config) Validate() error {
	var errs field.ErrorList
	errs = append(errs, c.NetworkLatency.Validate(field.NewPath("networkLatency"))...)
	errs = append(errs, c.TrafficLatency.Validate(field.NewPath("trafficLatency"))...)
	errs = append(errs, c.NodeLoad.Validate(field.NewPath("nodeLoad"))...)
	errs = append(errs, c.CloudFallback.Validate(field.NewPath("cloudFallback"))...)
	errs = append(errs, c.Limits.Validate(field.NewPath("limits"))...)
	if c.AssumeFor < 0 {
		errs = append(errs, field.Invalid(field.NewPath("assumeFor"), c.AssumeFor.String(), "must not be negative"))
	}
	for name, w := range map[string]int32{"trafficLatency": c.Weights.TrafficLatency, "nodeLoad": c.Weights.NodeLoad} {
		if w < 0 || w > 1000 {
			errs = append(errs, field.Invalid(field.NewPath("weights", name), w, "must be in 0..1000"))
		}
	}
	if c.Weights.TrafficLatency+c.Weights.NodeLoad <= 0 {
		errs = append(errs, field.Invalid(field.NewPath("weights"), c.Weights, "trafficLatency and nodeLoad must not both be 0"))
	}
	if c.NetworkLatency.SiteLabel != c.TrafficLatency.SiteLabel {
		errs = append(errs, field.Invalid(field.NewPath("trafficLatency", "siteLabel"), c.TrafficLatency.SiteLabel,
			"must equal networkLatency.siteLabel: the extender keeps one node-to-site index"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("extender configuration: %w", errs.ToAggregate())
	}
	return nil
}

// Extender answers /filter, /prioritize and /bind. It is safe for
// concurrent use.
type Extender struct {
	cfg     Config
	policy  policy.NodeLoad
	store   Store
	index   *siteindex.Index
	locate  policy.Locator
	nodes   corelisters.NodeLister
	pods    corelisters.PodLister
	metrics *Metrics
	log     *slog.Logger
	clock   clock.PassiveClock
	// open holds the pods whose delay constraints fail open, as
	// NetworkLatency's do.
	open policy.FailOpenLatch
	// recorder, when set, records the fail-open Event NetworkLatency records.
	recorder record.EventRecorder
	// client, when set, binds pods for /bind.
	client kubernetes.Interface
	// assumed are the pods /bind bound, until they expire.
	assumed assumedPods

	rtt topology.MatrixCache
	// inFlight holds a token per /filter or /prioritize request being
	// answered, binding one per /bind request.
	inFlight, binding chan struct{}
	// every limits refusal log lines to one per source and reason.
	every *logging.Throttle
}

// New builds an extender fed by the factory's node and pod informers (it
// registers them; the caller starts the factory and waits for the sync).
func New(f informers.SharedInformerFactory, store Store, cfg Config, m *Metrics, log *slog.Logger) (*Extender, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	index, err := siteindex.New(f, cfg.NetworkLatency.SiteLabel, true)
	if err != nil {
		return nil, fmt.Errorf("extender site index: %w", err)
	}
	pods := f.Core().V1().Pods().Lister()
	return &Extender{
		cfg:      cfg,
		policy:   policy.LoadPolicy(cfg.NodeLoad),
		store:    store,
		index:    index,
		locate:   index.Locator(pods),
		nodes:    f.Core().V1().Nodes().Lister(),
		pods:     pods,
		metrics:  m,
		log:      log,
		clock:    clock.RealClock{},
		inFlight: make(chan struct{}, cfg.Limits.MaxInFlight),
		binding:  make(chan struct{}, cfg.Limits.MaxBindsInFlight),
		every:    logging.NewThrottle(cfg.Limits.LogEvery, clock.RealClock{}),
	}, nil
}

// TrimPod is an informer transform that keeps only what the extender reads
// of a pod (name, namespace, UID, owners, node, phase), to keep a large
// cluster's pod cache small.
func TrimPod(obj any) (any, error) {
	p, ok := obj.(*v1.Pod)
	if !ok {
		return obj, nil
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID,
			ResourceVersion: p.ResourceVersion, OwnerReferences: p.OwnerReferences,
			DeletionTimestamp: p.DeletionTimestamp},
		Spec:   v1.PodSpec{NodeName: p.Spec.NodeName},
		Status: v1.PodStatus{Phase: p.Status.Phase},
	}, nil
}

// RequestError is a request the extender cannot answer: the HTTP layer
// returns it with Code (400 when 0) and the message, and counts it under
// Reason.
type RequestError struct {
	Reason string
	Msg    string
	Code   int
}

func (e *RequestError) Error() string { return e.Msg }

func badRequest(reason, format string, args ...any) error {
	return &RequestError{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// candidate is one node of a request.
type candidate struct {
	node *v1.Node
	site string
}

// candidates returns the request's nodes: looked up in the informer cache
// when the scheduler sent names (nodeCacheCapable), else as sent.
func (x *Extender) candidates(args *extenderv1.ExtenderArgs) ([]candidate, bool, error) {
	if args.Pod == nil {
		return nil, false, badRequest("missing_pod", "the request has no Pod")
	}
	label := x.cfg.NetworkLatency.SiteLabel
	if n := nodeCount(args); n > x.cfg.Limits.MaxNodes {
		return nil, false, tooManyNodes(n, x.cfg.Limits.MaxNodes)
	}
	if args.NodeNames != nil {
		names := *args.NodeNames
		out := make([]candidate, len(names))
		for i, name := range names {
			n, err := x.nodes.Get(name)
			if err != nil || name == "" {
				// Checked only on failure: apierrors.IsNotFound allocates.
				if err == nil || apierrors.IsNotFound(err) {
					return nil, true, badRequest("unknown_node", "node %q is not in the extender's node cache (not yet seen, or deleted)", name)
				}
				return nil, true, badRequest("unknown_node", "looking up node %q: %v", name, err)
			}
			out[i] = candidate{node: n, site: topology.SiteOf(n.Name, n.Labels, label)}
		}
		return out, true, nil
	}
	if args.Nodes == nil {
		return nil, false, badRequest("missing_nodes", "the request has neither NodeNames nor Nodes")
	}
	items := args.Nodes.Items
	out := make([]candidate, len(items))
	for i := range items {
		n := &items[i]
		if n.Name == "" {
			return nil, false, badRequest("unknown_node", "node %d of the request has no name", i)
		}
		if len(n.Name) > maxNodeName {
			return nil, false, badRequest("bad_node_name", "node %d of the request has a %d-byte name (at most %d)", i, len(n.Name), maxNodeName)
		}
		if v := n.Labels[label]; len(label)+len(v) > x.cfg.Limits.MaxLabelBytes {
			return nil, false, badRequest(reasonLabelTooLong, "node %q: %s", n.Name, labelTooLong(label, v, x.cfg.Limits.MaxLabelBytes))
		}
		out[i] = candidate{node: n, site: topology.SiteOf(n.Name, n.Labels, label)}
	}
	return out, false, nil
}

// Filter applies the pod's delay constraints (as NetworkLatency does) and the
// load thresholds (as NodeLoad does) to the request's nodes. A delay breach
// goes to FailedAndUnresolvableNodes (preemption cannot shorten an RTT); a
// load rejection or an unresolved <from> to FailedNodes.
func (x *Extender) Filter(ctx context.Context, args *extenderv1.ExtenderArgs) (*extenderv1.ExtenderFilterResult, error) {
	cands, byName, err := x.candidates(args)
	if err != nil {
		return nil, err
	}
	pod := args.Pod
	res := &extenderv1.ExtenderFilterResult{
		FailedNodes:                extenderv1.FailedNodesMap{},
		FailedAndUnresolvableNodes: extenderv1.FailedNodesMap{},
	}
	verdict, rejectAll, unresolvable, err := x.delayVerdicts(ctx, pod, cands)
	if err != nil {
		return nil, err
	}
	limits, count, err := x.siteLimits(ctx, pod)
	if err != nil && rejectAll == "" {
		rejectAll, unresolvable = err.Error(), true
	}
	full := func(site string) bool { return limits.Full(site, count[site]) }
	pass := make([]bool, len(cands))
	passing := 0
	loadReason := make([]string, len(cands))
	for i, c := range cands {
		l, fresh := x.store.Load(c.node.Name)
		loadReason[i] = policy.LoadRejection(x.policy, c.node.Name, l, fresh)
		switch {
		case rejectAll != "":
		case verdict != nil && !verdict.Verdicts[c.site].OK:
		case full(c.site):
		case loadReason[i] != "":
		default:
			pass[i] = true
			passing++
		}
	}
	if passing == 0 && verdict != nil && verdict.CanFailOpen() && (pod.UID == "" || x.open.Latch(pod.UID, x.clock.Now())) {
		// policy's fail-open rule, as NetworkLatency's PostFilter applies
		// it; the latch keeps it for the pod's next requests too (a pod
		// without a UID, which no scheduler sends, is judged per request).
		x.metrics.FailOpen.Inc()
		x.log.InfoContext(ctx, "No node fits while RTTs are unknown: the pod's delay constraints fail open for the unmeasured sites",
			"pod", pod.Namespace+"/"+pod.Name, "sites", verdict.UnknownOnly, "for", policy.FailOpenFor)
		if x.recorder != nil {
			x.recorder.Eventf(pod, v1.EventTypeWarning, policy.ReasonFailOpen, "%s", policy.FailOpenMessage(verdict.UnknownOnly))
		}
		verdict.FailOpen()
		for i, c := range cands {
			if verdict.Verdicts[c.site].OK && !full(c.site) && loadReason[i] == "" {
				pass[i] = true
			}
		}
	}
	var names []string
	var list *v1.NodeList
	if byName {
		names = make([]string, 0, len(cands))
	} else {
		list = &v1.NodeList{Items: make([]v1.Node, 0, len(cands))}
	}
	// Counted per request, not per node: a pod with a delay constraint
	// can reject most of a thousand nodes.
	var filtered struct{ label, delayFrom, delay, limit, load int }
	for i, c := range cands {
		name := c.node.Name
		switch {
		case pass[i]:
			if byName {
				names = append(names, name)
			} else {
				list.Items = append(list.Items, *c.node)
			}
			continue
		case rejectAll != "" && unresolvable:
			res.FailedAndUnresolvableNodes[name] = rejectAll
			filtered.label++
		case rejectAll != "":
			res.FailedNodes[name] = rejectAll
			filtered.delayFrom++
		case verdict != nil && !verdict.Verdicts[c.site].OK:
			res.FailedAndUnresolvableNodes[name] = verdict.Verdicts[c.site].Reason
			filtered.delay++
		case full(c.site):
			// Preemption frees no room: it never evicts the workload's
			// own replicas.
			res.FailedAndUnresolvableNodes[name] = limits.Reason(c.site, count[c.site])
			filtered.limit++
		default:
			res.FailedNodes[name] = loadReason[i]
			filtered.load++
		}
	}
	for reason, n := range map[string]int{"label": filtered.label, "delay_from": filtered.delayFrom, "delay": filtered.delay, "site_limit": filtered.limit, "load": filtered.load} {
		if n > 0 {
			x.metrics.Filtered.WithLabelValues(reason).Add(float64(n))
		}
	}
	if byName {
		res.NodeNames = &names
	} else {
		res.Nodes = list
	}
	return res, nil
}

// siteLimits are the pod's workload's limits per site (policy.SiteLimits:
// its ning.io/max-per-site label, the topology file's capacities, the nodes'
// ning.io/site-capacity labels) and, when there are any, where its replicas
// run or are assumed; the error is a malformed ning.io/max-per-site label.
func (x *Extender) siteLimits(ctx context.Context, pod *v1.Pod) (policy.SiteLimits, map[string]int, error) {
	fromNodes, bad := x.index.SiteCapacities()
	if len(bad) > 0 {
		x.metrics.MalformedLimits.WithLabelValues("site_capacity").Inc()
		if ok, _ := x.every.Allow("site_capacity"); ok {
			x.log.WarnContext(ctx, "A node's "+policy.LabelSiteCapacity+" label is malformed and ignored", "nodes", len(bad), "err", bad[0])
		}
	}
	limits, err := policy.LimitsOf(pod, policy.SiteCapacities(x.store.Capacities(), fromNodes))
	if err != nil {
		x.metrics.MalformedLimits.WithLabelValues("max_per_site").Inc()
		return policy.SiteLimits{PerSite: placement.Unlimited}, nil, err
	}
	if limits.None() {
		return limits, nil, nil
	}
	x.expireAssumed()
	return limits, x.index.Counts(policy.WorkloadOf(pod).UID, pod.UID), nil
}

// delayVerdicts parses the pod's delay labels and judges every site once. It
// returns nil verdicts when the pod has no constraints, or a reason that
// rejects every node: a malformed label (unresolvable) or a <from> that names
// nothing yet (resolvable).
func (x *Extender) delayVerdicts(ctx context.Context, pod *v1.Pod, cands []candidate) (*policy.DelayJudgement, string, bool, error) {
	for k, v := range pod.Labels {
		if len(k)+len(v) > x.cfg.Limits.MaxLabelBytes {
			// One short reason, the same string for every node: a label
			// the apiserver could never have accepted is not copied into
			// the reply once per node.
			reason := "pod " + labelTooLong(k, v, x.cfg.Limits.MaxLabelBytes)
			x.metrics.Bounded.WithLabelValues(reasonLabelTooLong).Inc()
			if ok, _ := x.every.Allow(reasonLabelTooLong + "\x00" + pod.Namespace + "/" + pod.Name); ok {
				x.log.WarnContext(ctx, "A pod label is over the limit: every node rejected", "pod", pod.Namespace+"/"+pod.Name, "reason", reason)
			}
			return nil, reason, true, nil
		}
	}
	cs, err := placement.ParseConstraints(pod.Labels)
	if err != nil {
		x.metrics.MalformedLabels.Inc()
		return nil, err.Error(), true, nil
	}
	if len(cs) == 0 {
		return nil, "", false, nil
	}
	// A node sent whole that the informer has not seen yet is a node all
	// the same: the request's nodes count beside the index's.
	resolved, err := policy.Resolve(cs, pod.Namespace, candidateLocator{x.locate, cands})
	if err != nil {
		return nil, err.Error(), false, nil
	}
	unknownRTT := x.open.Policy(pod.UID, policy.UnknownRTT(x.cfg.NetworkLatency.UnknownRTT), x.clock.Now())
	return policy.JudgeSites(resolved, x.sites(cands), x.store, unknownRTT), "", false, nil
}

// candidateLocator finds nodes and sites in the index, then among the
// request's nodes.
type candidateLocator struct {
	policy.Locator
	cands []candidate
}

func (l candidateLocator) SiteOfNode(name string) (string, bool) {
	if site, ok := l.Locator.SiteOfNode(name); ok {
		return site, true
	}
	for _, c := range l.cands {
		if c.node.Name == name {
			return c.site, true
		}
	}
	return "", false
}

func (l candidateLocator) HasSite(site string) bool {
	if l.Locator.HasSite(site) {
		return true
	}
	for _, c := range l.cands {
		if c.site == site {
			return true
		}
	}
	return false
}

// Prioritize scores the request's nodes 0..MaxExtenderPriority (10):
//
//	cloud node (CloudFallback's label):  0
//	edge node:  1 + round(9 * (Wt*T + Wl*L) / (Wt + Wl))
//
// T (0..1) is TrafficLatency's score, its raw per-site value normalised
// linearly over the request's edge nodes; L (0..1) is NodeLoad's score (0.5
// without a fresh report). Wt and Wl are the profile's weights (Config's
// Weights; ning's profile's are 10 and 2). Every
// edge node thus outranks every cloud node inside the extender's score; the
// extender's weight in the scheduler's configuration decides how much that
// counts against the default plugins.
//
//nolint:misspell // the API's verb
func (x *Extender) Prioritize(ctx context.Context, args *extenderv1.ExtenderArgs) (extenderv1.HostPriorityList, error) {
	cands, _, err := x.candidates(args)
	if err != nil {
		return nil, err
	}
	traffic, err := x.trafficScores(ctx, args.Pod, cands)
	if err != nil {
		return nil, err
	}
	out := make(extenderv1.HostPriorityList, len(cands))
	missingLoad := false
	for i, c := range cands {
		out[i].Host = c.node.Name
		if x.isCloud(c.node) {
			out[i].Score = extenderv1.MinExtenderPriority
			continue
		}
		l, fresh := x.store.Load(c.node.Name)
		missingLoad = missingLoad || !fresh
		load := policy.LoadScore(x.policy, l, fresh)
		wt, wl := float64(x.cfg.Weights.TrafficLatency), float64(x.cfg.Weights.NodeLoad)
		combined := (wt*traffic[i] + wl*load) / (wt + wl)
		out[i].Score = 1 + int64(math.Round(float64(extenderv1.MaxExtenderPriority-1)*combined))
	}
	if missingLoad {
		x.metrics.MissingData.WithLabelValues("load").Inc()
	}
	return out, nil
}

// trafficScores is TrafficLatency's PreScore, Score and NormalizeScore for
// the request's nodes: 0..1, the best candidate site 1. One difference: the
// scale is set by the edge nodes only. Cloud nodes score 0 whatever their
// traffic part, and a cloud site with no RTT data would otherwise (its gain
// near 0 beside the edge sites' gains near the unknown-RTT penalty) squeeze
// every edge site into the top of the 9 levels left. All zero without traffic
// data (the plugin then skips). It stops with an error when ctx ends.
func (x *Extender) trafficScores(ctx context.Context, pod *v1.Pod, cands []candidate) ([]float64, error) {
	out := make([]float64, len(cands))
	traffic := x.store.Traffic()
	total := 0.0
	for _, v := range traffic {
		total += v
	}
	if total <= 0 || len(cands) == 0 {
		x.metrics.MissingData.WithLabelValues("traffic").Inc()
		return out, nil
	}
	// The sites are the cluster's, from the node informer: a request's
	// nodes the informer has not seen do not add sites to the matrix (a
	// request listing 25,000 unlabelled nodes would otherwise build a
	// 25,000 x 25,000 one). They score 0 here, as a site without data.
	sites := x.index.Sites()
	if limit := x.store.MaxSites(); len(sites) > limit {
		x.metrics.Bounded.WithLabelValues(topology.ReasonTooManySites).Inc()
		if ok, _ := x.every.Allow(topology.ReasonTooManySites); ok {
			x.log.WarnContext(ctx, "The cluster has more sites than the RTT matrix limit: /prioritize scores without traffic",
				"sites", len(sites), "limit", limit)
		}
		return out, nil
	}
	index := make(map[string]int, len(sites))
	for i, site := range sites {
		index[site] = i
	}
	x.expireAssumed()
	count := x.index.Counts(policy.WorkloadOf(pod).UID, pod.UID)
	prob := policy.Problem(sites, x.matrix(sites), traffic, x.cfg.TrafficLatency.PerReplicaRPS)
	r, err := policy.Rank(ctx, prob, policy.Current(sites, count))
	if err != nil {
		return nil, fmt.Errorf("ranking sites: %w", err)
	}
	raw := r.Raw
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	unknown := false
	for _, c := range cands {
		if i, ok := index[c.site]; ok && !x.isCloud(c.node) {
			lo, hi = min(lo, raw[i]), max(hi, raw[i])
		} else if !ok {
			unknown = true
		}
	}
	if unknown {
		x.metrics.Bounded.WithLabelValues(reasonUnknownSite).Inc()
	}
	if hi <= lo {
		return out, nil
	}
	for i, c := range cands {
		if j, ok := index[c.site]; ok && !x.isCloud(c.node) {
			out[i] = float64(raw[j]-lo) / float64(hi-lo)
		}
	}
	return out, nil
}

func (x *Extender) isCloud(n *v1.Node) bool {
	return policy.IsCloud(n.Labels, x.cfg.CloudFallback)
}

// sites returns the index's sites plus any candidate site it lacks (a node
// sent whole that the informer has not seen), sorted: the sites /filter
// judges, one by one (no matrix is built over them).
func (x *Extender) sites(cands []candidate) []string {
	sites := x.index.Sites()
	var extra []string
	for _, c := range cands {
		i := sort.SearchStrings(sites, c.site)
		if (i >= len(sites) || sites[i] != c.site) && !contains(extra, c.site) {
			extra = append(extra, c.site)
		}
	}
	if len(extra) == 0 {
		return sites
	}
	all := append(append(make([]string, 0, len(sites)+len(extra)), sites...), extra...)
	sort.Strings(all)
	return all
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (x *Extender) matrix(sites []string) [][]float64 {
	return x.rtt.Matrix(x.store, sites)
}

// Reasons of the extender's refusals and bounds beside the RequestErrors'.
const (
	reasonLabelTooLong = "label_too_long"
	reasonUnknownSite  = "unknown_site"
	reasonTooManyNodes = "too_many_nodes"
	reasonInFlight     = "in_flight"
	reasonTooLarge     = "too_large"
	// reasonCancelled: the request ended (its client gave up) while the
	// verb was still computing.
	reasonCancelled = "cancelled"
)

func nodeCount(args *extenderv1.ExtenderArgs) int {
	switch {
	case args.NodeNames != nil:
		return len(*args.NodeNames)
	case args.Nodes != nil:
		return len(args.Nodes.Items)
	}
	return 0
}

func tooManyNodes(n, limit int) error {
	return &RequestError{Reason: reasonTooManyNodes, Code: http.StatusRequestEntityTooLarge,
		Msg: fmt.Sprintf("the request lists %d nodes, over the limit of %d", n, limit)}
}

// labelTooLong names a label by the start of its key, and its length.
func labelTooLong(key, value string, limit int) string {
	return fmt.Sprintf("label %.40q is %d bytes (key and value), over the %d-byte limit", key, len(key)+len(value), limit)
}

// errRequest reports whether err is a RequestError.
func errRequest(err error) (*RequestError, bool) {
	var re *RequestError
	ok := errors.As(err, &re)
	return re, ok
}
