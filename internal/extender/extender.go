// Package extender serves ning's placement decisions to a stock kube-scheduler
// through the scheduler extender HTTP API (k8s.io/kube-scheduler/extender/v1):
// /filter applies the delay constraints and load thresholds, /prioritize ranks
// nodes by traffic-weighted RTT gain, load and cloud fallback. It reads the
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
	"sort"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/plugins/siteindex"
	"github.com/ning-edge/ning/internal/plugins/trafficlatency"
	"github.com/ning-edge/ning/internal/topology"
)

// Store is what the extender reads; *topology.Store implements it.
type Store interface {
	placement.RTTLookup
	Matrix(sites []string) [][]float64
	Traffic() map[string]float64
	RTTVersion() uint64
	Load(node string) (topology.Load, bool)
}

// Weights of the traffic and load parts of the /prioritize score: the ning
// profile's TrafficLatency and NodeLoad weights (10 and 2).
const (
	TrafficWeight = 10
	LoadWeight    = 2
)

// neutralLoad is the 0..1 load score of a node without a fresh report (the
// NodeLoad plugin's NeutralScore).
const neutralLoad = 0.5

// Config holds the plugins' arguments the extender applies. Zero values take
// the plugins' defaults.
type Config struct {
	NetworkLatency configv1alpha1.NetworkLatencyArgs
	TrafficLatency configv1alpha1.TrafficLatencyArgs
	NodeLoad       configv1alpha1.NodeLoadArgs
	CloudFallback  configv1alpha1.CloudFallbackArgs
}

// SetDefaults fills unset fields with the plugins' defaults.
func (c *Config) SetDefaults() {
	c.NetworkLatency.SetDefaults()
	c.TrafficLatency.SetDefaults()
	c.NodeLoad.SetDefaults()
	c.CloudFallback.SetDefaults()
}

// Validate checks the configuration; call SetDefaults first.
func (c *Config) Validate() error {
	var errs field.ErrorList
	errs = append(errs, c.NetworkLatency.Validate(field.NewPath("networkLatency"))...)
	errs = append(errs, c.TrafficLatency.Validate(field.NewPath("trafficLatency"))...)
	errs = append(errs, c.NodeLoad.Validate(field.NewPath("nodeLoad"))...)
	errs = append(errs, c.CloudFallback.Validate(field.NewPath("cloudFallback"))...)
	if c.NetworkLatency.SiteLabel != c.TrafficLatency.SiteLabel {
		errs = append(errs, field.Invalid(field.NewPath("trafficLatency", "siteLabel"), c.TrafficLatency.SiteLabel,
			"must equal networkLatency.siteLabel: the extender keeps one node-to-site index"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("extender configuration: %w", errs.ToAggregate())
	}
	return nil
}

// Extender answers /filter and /prioritize. It is safe for concurrent use.
type Extender struct {
	cfg     Config
	policy  placement.LoadPolicy
	store   Store
	index   *siteindex.Index
	nodes   corelisters.NodeLister
	pods    corelisters.PodLister
	metrics *Metrics
	log     *slog.Logger

	rtt topology.MatrixCache
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
	return &Extender{
		cfg:     cfg,
		policy:  cfg.NodeLoad.Policy(),
		store:   store,
		index:   index,
		nodes:   f.Core().V1().Nodes().Lister(),
		pods:    f.Core().V1().Pods().Lister(),
		metrics: m,
		log:     log,
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
// returns it as 400 with the message, and counts it under Reason.
type RequestError struct {
	Reason string
	Msg    string
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
	pass := make([]bool, len(cands))
	passing := 0
	loadReason := make([]string, len(cands))
	for i, c := range cands {
		if l, ok := x.store.Load(c.node.Name); ok {
			if ok, why := x.policy.Filter(l); !ok {
				loadReason[i] = "node " + c.node.Name + ": " + why
			}
		}
		switch {
		case rejectAll != "":
		case verdict != nil && !verdict[c.site].OK:
		case loadReason[i] != "":
		default:
			pass[i] = true
			passing++
		}
	}
	if passing == 0 && verdict != nil && x.shouldFailOpen(verdict) {
		// Every delay rejection rests on a missing RTT and none on a measured
		// one: as NetworkLatency's PostFilter does, fail open for those
		// sites rather than leave the pod pending for want of data.
		x.metrics.FailOpen.Inc()
		x.log.InfoContext(ctx, "No node fits while RTTs are unknown: the pod's delay constraints fail open for the unmeasured sites",
			"pod", pod.Namespace+"/"+pod.Name)
		for s, v := range verdict {
			if !v.OK && v.Unknown {
				verdict[s] = placement.Verdict{OK: true, Unknown: true}
			}
		}
		for i, c := range cands {
			if verdict[c.site].OK && loadReason[i] == "" {
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
	var filtered struct{ label, delayFrom, delay, load int }
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
		case verdict != nil && !verdict[c.site].OK:
			res.FailedAndUnresolvableNodes[name] = verdict[c.site].Reason
			filtered.delay++
		default:
			res.FailedNodes[name] = loadReason[i]
			filtered.load++
		}
	}
	for reason, n := range map[string]int{"label": filtered.label, "delay_from": filtered.delayFrom, "delay": filtered.delay, "load": filtered.load} {
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

// delayVerdicts parses the pod's delay labels and judges every site once. It
// returns nil verdicts when the pod has no constraints, or a reason that
// rejects every node: a malformed label (unresolvable) or a <from> that names
// nothing yet (resolvable).
func (x *Extender) delayVerdicts(_ context.Context, pod *v1.Pod, cands []candidate) (map[string]placement.Verdict, string, bool, error) {
	cs, err := placement.ParseConstraints(pod.Labels)
	if err != nil {
		x.metrics.MalformedLabels.Inc()
		return nil, err.Error(), true, nil
	}
	if len(cs) == 0 {
		return nil, "", false, nil
	}
	resolved := make([]placement.Resolved, 0, len(cs))
	for _, c := range cs {
		site, why := x.resolve(c.From, pod.Namespace, cands)
		if why != "" {
			return nil, fmt.Sprintf("%s: %s", c, why), false, nil
		}
		resolved = append(resolved, placement.Resolved{Constraint: c, FromSite: site})
	}
	policy := x.cfg.NetworkLatency.UnknownRTT
	verdict := map[string]placement.Verdict{}
	judge := func(site string) {
		if _, done := verdict[site]; !done {
			verdict[site] = placement.CheckSite(resolved, site, x.store, policy)
		}
	}
	for _, site := range x.index.Sites() {
		judge(site)
	}
	for _, c := range cands {
		judge(c.site)
	}
	return verdict, "", false, nil
}

// shouldFailOpen is NetworkLatency's PostFilter condition: some site was
// rejected only for an unknown RTT and no measured RTT breaks a constraint
// anywhere.
func (x *Extender) shouldFailOpen(verdict map[string]placement.Verdict) bool {
	unknownOnly := false
	for _, v := range verdict {
		switch {
		case v.OK:
		case v.Unknown:
			unknownOnly = true
		default:
			return false
		}
	}
	return unknownOnly
}

// resolve finds the site of a constraint's <from> as NetworkLatency does: a
// node of that name, else a site of that name, else a pod of that name in the
// pod's namespace. It returns a reason when there is none.
func (x *Extender) resolve(from, namespace string, cands []candidate) (string, string) {
	if site, ok := x.index.SiteOfNode(from); ok {
		return site, ""
	}
	sites := x.index.Sites()
	if i := sort.SearchStrings(sites, from); i < len(sites) && sites[i] == from {
		return from, ""
	}
	for _, c := range cands {
		if c.node.Name == from || c.site == from {
			return c.site, ""
		}
	}
	pod, err := x.pods.Pods(namespace).Get(from)
	if err != nil {
		return "", fmt.Sprintf("no node, site or pod named %s", from)
	}
	if pod.Spec.NodeName == "" {
		return "", fmt.Sprintf("pod %s/%s is not on a node yet", namespace, from)
	}
	site, ok := x.index.SiteOfNode(pod.Spec.NodeName)
	if !ok {
		return "", fmt.Sprintf("pod %s/%s runs on node %s, which is not known", namespace, from, pod.Spec.NodeName)
	}
	return site, ""
}

// Prioritize scores the request's nodes 0..MaxExtenderPriority (10):
//
//	cloud node (CloudFallback's label):  0
//	edge node:  1 + round(9 * (10*T + 2*L) / 12)
//
// T (0..1) is TrafficLatency's score, its raw per-site value normalised
// linearly over the request's edge nodes; L (0..1) is NodeLoad's score (0.5
// without a fresh report). 10 and 2 are the ning profile's weights. Every
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
	traffic := x.trafficScores(ctx, args.Pod, cands)
	out := make(extenderv1.HostPriorityList, len(cands))
	missingLoad := false
	for i, c := range cands {
		out[i].Host = c.node.Name
		if x.isCloud(c.node) {
			out[i].Score = extenderv1.MinExtenderPriority
			continue
		}
		load := neutralLoad
		if l, ok := x.store.Load(c.node.Name); ok {
			load = x.policy.Score(l)
		} else {
			missingLoad = true
		}
		combined := (TrafficWeight*traffic[i] + LoadWeight*load) / (TrafficWeight + LoadWeight)
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
// data (the plugin then skips).
func (x *Extender) trafficScores(_ context.Context, pod *v1.Pod, cands []candidate) []float64 {
	out := make([]float64, len(cands))
	traffic := x.store.Traffic()
	total := 0.0
	for _, v := range traffic {
		total += v
	}
	if total <= 0 || len(cands) == 0 {
		x.metrics.MissingData.WithLabelValues("traffic").Inc()
		return out
	}
	sites := x.sites(cands)
	index := make(map[string]int, len(sites))
	count := x.index.Counts(siteindex.WorkloadOf(pod), pod.UID)
	prob := &placement.Problem{
		Sites:         sites,
		Traffic:       make([]float64, len(sites)),
		Capacity:      make([]int, len(sites)),
		RTT:           x.matrix(sites),
		PerReplicaRPS: x.cfg.TrafficLatency.PerReplicaRPS,
	}
	current := make(placement.Placement, len(sites))
	for i, site := range sites {
		index[site] = i
		prob.Traffic[i] = traffic[site]
		prob.Capacity[i] = placement.Unlimited
		current[i] = count[site]
	}
	prob.Replicas = current.Total() + 1
	raw := trafficlatency.RawScores(placement.MarginalGains(prob, current), current)
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, c := range cands {
		if !x.isCloud(c.node) {
			r := raw[index[c.site]]
			lo, hi = min(lo, r), max(hi, r)
		}
	}
	if hi <= lo {
		return out
	}
	for i, c := range cands {
		if !x.isCloud(c.node) {
			out[i] = float64(raw[index[c.site]]-lo) / float64(hi-lo)
		}
	}
	return out
}

func (x *Extender) isCloud(n *v1.Node) bool {
	return n.Labels[x.cfg.CloudFallback.CloudLabel] == x.cfg.CloudFallback.CloudValue
}

// sites returns the index's sites plus any candidate site it lacks (a node
// sent whole that the informer has not seen), sorted.
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

// errRequest reports whether err is a RequestError.
func errRequest(err error) (*RequestError, bool) {
	var re *RequestError
	ok := errors.As(err, &re)
	return re, ok
}
