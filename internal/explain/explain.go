// Package explain tells why a pod of ning's sits where it does, or is
// pending, and where its workload's replicas belong: the pod's delay
// constraints and each site's verdict with the RTT and data age behind it,
// each ning plugin's raw and normalised score per site and node, the
// planner's placement beside the actual one with the weighted RTT of each,
// and why the runner-up site lost. It is `ning explain`.
//
// It holds no decision of its own: every verdict, score, ranking and plan
// comes from internal/policy and internal/placement, the same calls the
// scheduler plugins, the extender and the rescheduler make.
package explain

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/plugins/cloudfallback"
	"github.com/ning-edge/ning/internal/plugins/networklatency"
	"github.com/ning-edge/ning/internal/plugins/nodeload"
	"github.com/ning-edge/ning/internal/plugins/trafficlatency"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/topology"
)

// Kinds of object explained.
const (
	KindPod        = "pod"
	KindDeployment = "deployment"
)

// Explanation is what `ning explain` prints (-o json is this, as JSON).
type Explanation struct {
	Time time.Time `json:"time"`
	// Kind is "pod" or "deployment"; Namespace and Name the object asked about.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Pod is the pod explained: the one asked for, or none for a deployment.
	Pod *Pod `json:"pod,omitempty"`
	// Workload is what groups the pod with its replicas (policy.WorkloadOf).
	Workload Workload `json:"workload"`
	// Updates says when the store last received each kind of data.
	Updates Updates `json:"updates"`
	// RawNote says why some sites' TrafficLatency gains in ms and raw
	// scores are not shown ("" when all are).
	RawNote string `json:"rawNote,omitempty"`
	// LimitError says why the pod's ning.io/max-per-site label rejects it;
	// "" when it has none or a good one.
	LimitError string `json:"limitError,omitempty"`
	// Limits says the workload's site limits in words ("" without any).
	Limits string `json:"limits,omitempty"`
	// UnknownRTT is the delay constraints' unknown-RTT policy explained with.
	UnknownRTT string `json:"unknownRTT"`
	// Constraints are the pod's delay_<from> labels; ConstraintError says
	// why they cannot be used (a malformed label, a <from> not found).
	Constraints     []Constraint `json:"constraints"`
	ConstraintError string       `json:"constraintError,omitempty"`
	// FailedOpen is true when no site met the constraints only for unknown
	// RTTs, so they fail open (policy.DelayJudgement.CanFailOpen).
	FailedOpen bool `json:"failedOpen,omitempty"`
	// TrafficRPS is the total traffic; without any, TrafficLatency scores
	// every node the same and the planner has nothing to weigh.
	TrafficRPS float64 `json:"trafficRps"`
	Sites      []Site  `json:"sites"`
	Nodes      []Node  `json:"nodes"`
	// Weights are the score plugins' weights in ning's profile.
	Weights policy.Weights `json:"weights"`
	// Actual and Planned are the replicas per site as they run and as the
	// planner would place the workload's Replicas over the usable sites.
	Actual  Placement `json:"actual"`
	Planned Placement `json:"planned"`
	// PlanError says why there is no plan.
	PlanError string `json:"planError,omitempty"`
	// Choice is the site the pod is in (a bound pod) or where the scheduler
	// would put it (a pending pod, a deployment's next replica), and why;
	// RunnerUp the best other site, and why it lost.
	Choice   *Choice `json:"choice,omitempty"`
	RunnerUp *Choice `json:"runnerUp,omitempty"`
	// Default says how kube-scheduler's default plugins are accounted for.
	Default string `json:"defaultPlugins"`
}

// Pod is the pod explained.
type Pod struct {
	Name string `json:"name"`
	Node string `json:"node,omitempty"`
	Site string `json:"site,omitempty"`
	// Pending says why the scheduler left it pending (its PodScheduled
	// condition), for a pod not bound.
	Pending string `json:"pending,omitempty"`
	// Decisions are ning's Events about the pod, newest first.
	Decisions []Decision `json:"decisions,omitempty"`
}

// Decision is one of ning's Events.
type Decision struct {
	Time    time.Time `json:"time"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
}

// Workload is the pod's workload.
type Workload struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Deployment names the Deployment a ReplicaSet belongs to.
	Deployment string `json:"deployment,omitempty"`
	// Replicas counts its pods, bound or not; Pending those not bound.
	Replicas int `json:"replicas"`
	Pending  int `json:"pending"`
}

// Updates says when the store last received each kind of data.
type Updates struct {
	RTT     time.Time `json:"rtt"`
	Traffic time.Time `json:"traffic"`
	Load    time.Time `json:"load"`
}

// Constraint is one delay_<from> label.
type Constraint struct {
	Label    string  `json:"label"`
	From     string  `json:"from"`
	FromSite string  `json:"fromSite,omitempty"`
	MaxMs    float64 `json:"maxMs"`
}

// RTT is one RTT a verdict rests on, and how old it is.
type RTT struct {
	FromSite string   `json:"fromSite"`
	Ms       *float64 `json:"ms"`
	Static   bool     `json:"static,omitempty"`
	// Measured is when the measurement was taken (for an unknown RTT, when
	// the last one, now stale, was); absent for a static or never measured one.
	Measured *time.Time `json:"measured,omitempty"`
}

// Site is one site, judged for the pod.
type Site struct {
	Name string `json:"name"`
	// Nodes counts its nodes, Schedulable those the pod could run on as far
	// as the node goes (Ready, not cordoned, taints tolerated).
	Nodes       int      `json:"nodes"`
	Schedulable int      `json:"schedulable"`
	Cloud       bool     `json:"cloud,omitempty"`
	TrafficRPS  *float64 `json:"trafficRps"`
	// Replicas counts the workload's bound pods there (the pod explained
	// not among them: the scheduler scored without it).
	Replicas int `json:"replicas"`
	// OK is NetworkLatency's verdict; Reason says why not (or that it rests
	// on an unknown RTT), RTTs are the RTTs it rests on, one per constraint.
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
	RTTs   []RTT  `json:"rtts,omitempty"`
	// Usable says whether the planner may put a replica here
	// (policy.UsableSites).
	Usable bool `json:"usable"`
	// GainMs and ShareRPS are TrafficLatency's marginal gains for one more
	// replica here; Raw its raw score, Normalised the score of this site's
	// nodes among the candidates (nil when none is a candidate); Gain says
	// it for a person. GainMs and Raw are nil where the gain is no number
	// of ms: before the replica some traffic had no replica at a known RTT
	// (or there was no replica at all), and the planner counts such
	// traffic at a penalty no person should read (see RawNote).
	GainMs     *float64 `json:"gainMs"`
	ShareRPS   float64  `json:"shareRps"`
	Raw        *int64   `json:"trafficLatencyRaw"`
	Normalised *int64   `json:"trafficLatencyNormalised"`
	Gain       string   `json:"gain,omitempty"`
	// raw is the raw score, shown or not, that ranks the site.
	raw int64
}

// Node is one node, filtered and scored for the pod.
type Node struct {
	Name string `json:"name"`
	Site string `json:"site"`
	// Filter is "" when the node passes ning's filters, else why not.
	Filter string `json:"filter,omitempty"`
	// Load is the node's fresh CPU utilisation (nil without a fresh report);
	// Replicas the workload's pods on it.
	CPU      *float64 `json:"cpu"`
	Replicas int      `json:"replicas"`
	// Scores are each ning score plugin's score (candidates only) and
	// Total their weighted sum.
	Scores []Score `json:"scores,omitempty"`
	Total  int64   `json:"total"`
}

// Score is one score plugin's score of a node.
type Score struct {
	Plugin string `json:"plugin"`
	// Raw is the plugin's own figure before the 0..100 scale: TrafficLatency's
	// raw ranking value (policy.RawScores), NodeLoad's 0..1 policy.NodeScore,
	// CloudFallback's 0 or 100; Normalised is the 0..100 score the framework
	// weighs; Weight its weight in ning's profile.
	// Raw is nil for TrafficLatency where its site's Raw is.
	Raw        *float64 `json:"raw"`
	Normalised int64    `json:"normalised"`
	Weight     int32    `json:"weight"`
	// Default is true for kube-scheduler's own plugins.
	Default bool `json:"default,omitempty"`
}

// Placement is replicas per site and its traffic-weighted mean RTT.
type Placement struct {
	Replicas map[string]int `json:"replicas"`
	// WeightedRTTMs is nil when it is not known (policy.MeanRTT).
	WeightedRTTMs *float64 `json:"weightedRttMs"`
}

// Choice is a site the scheduler picks or passes over, and why.
type Choice struct {
	Site string `json:"site"`
	Node string `json:"node,omitempty"`
	// Total is its best node's weighted score.
	Total int64 `json:"total"`
	// Gain says what one more replica there does (policy.DescribeGain).
	Gain string `json:"gain,omitempty"`
	// Why says why it was chosen, or, for the runner-up, why it lost.
	Why string `json:"why"`
}

// Args are the scheduler's plugin arguments explained with: ning's default
// profile's unless a flag says otherwise.
type Args struct {
	UnknownRTT    configv1alpha1.UnknownRTTPolicy
	NodeLoad      configv1alpha1.NodeLoadArgs
	CloudFallback configv1alpha1.CloudFallbackArgs
	Weights       policy.Weights
	PerReplicaRPS float64
	SiteLabel     string
}

// withDefaults fills what is unset as ning's default profile does.
func (a Args) withDefaults() Args {
	nl := configv1alpha1.NetworkLatencyArgs{UnknownRTT: a.UnknownRTT, SiteLabel: a.SiteLabel}
	nl.SetDefaults()
	a.UnknownRTT, a.SiteLabel = nl.UnknownRTT, nl.SiteLabel
	a.NodeLoad.SetDefaults()
	a.CloudFallback.SetDefaults()
	if a.Weights == (policy.Weights{}) {
		a.Weights = policy.DefaultWeights()
	}
	return a
}

// Store is what explain reads from the topology store.
type Store interface {
	placement.RTTLookup
	Matrix(sites []string) [][]float64
	Traffic() map[string]float64
	Load(node string) (topology.Load, bool)
	Detail(from, to string) topology.RTTDetail
	LastUpdates() topology.Updates
	Capacities() map[string]int
}

// inputs are the cluster's objects an explanation is built from.
type inputs struct {
	kind, namespace, name string
	nodes                 []*v1.Node
	// pods are the namespace's pods, whoever schedules them (a <from> pod
	// may be any); ning's are those with schedulerName.
	pods          []*v1.Pod
	events        []*v1.Event
	schedulerName string
	now           time.Time
	// client and allPods (every namespace's) feed the default score
	// plugins' snapshot; without a client they are not scored.
	client  kubernetes.Interface
	allPods []*v1.Pod
	// defaultsOff, when not empty, says why the default plugins are not
	// scored.
	defaultsOff string
}

// defaultsNote says how kube-scheduler's default plugins are accounted for.
const defaultsNote = "score plugins TaintToleration, NodeAffinity, NodeResourcesFit, InterPodAffinity, " +
	"NodeResourcesBalancedAllocation and ImageLocality run themselves on a snapshot of the cluster, with their default " +
	"arguments and weights (a plugin with nothing to score, such as NodeAffinity without preferred terms, skips); " +
	"of their filters only Schedulable (Ready, not cordoned, taints tolerated) is applied"

// errNotFound marks an object that is not there.
var errNotFound = errors.New("not found")

// build explains in.kind in.namespace/in.name.
func build(ctx context.Context, in inputs, store Store, a Args) (*Explanation, error) {
	a = a.withDefaults()
	e := &Explanation{Time: in.now, Kind: in.kind, Namespace: in.namespace, Name: in.name,
		UnknownRTT: string(a.UnknownRTT), Weights: a.Weights}
	u := store.LastUpdates()
	e.Updates = Updates{RTT: u.RTT, Traffic: u.Traffic, Load: u.Load}

	target, members, err := selectPods(in)
	if err != nil {
		return nil, err
	}
	sample := target
	if sample == nil {
		sample = members[0]
	}
	wl := policy.WorkloadOf(sample)
	e.Workload = Workload{Kind: wl.Kind, Name: wl.Name, Deployment: deploymentOf(sample, wl)}
	for _, p := range members {
		e.Workload.Replicas++
		if p.Spec.NodeName == "" {
			e.Workload.Pending++
		}
	}

	// Sites are those with a node, as the plugins' site index has them.
	nodeSite := map[string]string{}
	siteIdx := map[string]int{}
	var sites []string
	for _, n := range in.nodes {
		s := topology.SiteOf(n.Name, n.Labels, a.SiteLabel)
		nodeSite[n.Name] = s
		if _, ok := siteIdx[s]; !ok {
			siteIdx[s] = 0
			sites = append(sites, s)
		}
	}
	sort.Strings(sites)
	for i, s := range sites {
		siteIdx[s] = i
	}
	siteNodes := make([][]*v1.Node, len(sites))
	nodes := append([]*v1.Node(nil), in.nodes...)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	for _, n := range nodes {
		k := siteIdx[nodeSite[n.Name]]
		siteNodes[k] = append(siteNodes[k], n)
	}

	if target != nil {
		e.Pod = &Pod{Name: target.Name, Node: target.Spec.NodeName, Decisions: decisions(in.events, target)}
		if target.Spec.NodeName != "" {
			e.Pod.Site = siteOfNode(nodeSite, target.Spec.NodeName)
		} else {
			e.Pod.Pending = pendingReason(target)
		}
	}

	// Replicas per site: all bound pods (actual), and those the scheduler
	// counted when it scored the pod (not the pod itself).
	actual, counted := map[string]int{}, map[string]int{}
	for _, p := range members {
		if p.Spec.NodeName == "" {
			continue
		}
		s := siteOfNode(nodeSite, p.Spec.NodeName)
		actual[s]++
		if target == nil || p.UID != target.UID {
			counted[s]++
		}
	}

	// NetworkLatency: parse, resolve, judge (its PreFilter's calls).
	var judgement *policy.DelayJudgement
	cs, perr := placement.ParseConstraints(sample.Labels)
	for _, c := range cs {
		e.Constraints = append(e.Constraints, Constraint{Label: c.Label, From: c.From, MaxMs: c.MaxMs})
	}
	var resolved []placement.Resolved
	switch {
	case perr != nil:
		e.ConstraintError = fmt.Sprintf("%s rejects every node (UnschedulableAndUnresolvable): %v", networklatency.Name, perr)
	case len(cs) > 0:
		loc := locator{nodeSite: nodeSite, siteIdx: siteIdx, pods: podsByName(in.pods)}
		resolved, err = policy.Resolve(cs, sample.Namespace, loc)
		if err != nil {
			e.ConstraintError = fmt.Sprintf("%s rejects every node (Unschedulable, until it appears): %v", networklatency.Name, err)
			break
		}
		for i, r := range resolved {
			e.Constraints[i].FromSite = r.FromSite
		}
		judgement = policy.JudgeSites(resolved, sites, store, policy.UnknownRTT(a.UnknownRTT))
	}
	hasNode, hasEdge := policy.SiteNodes(siteNodes, sample, a.CloudFallback)
	var usable []bool
	if e.ConstraintError != "" {
		usable = make([]bool, len(sites))
	} else {
		couldFailOpen := judgement != nil && judgement.CanFailOpen()
		usable = policy.UsableSites(judgement, sites, hasNode, hasEdge)
		e.FailedOpen = couldFailOpen && len(judgement.UnknownOnly) == 0
	}

	// TrafficLatency's per-site limits (its PreFilter's calls): the pod's
	// ning.io/max-per-site and the sites' capacities.
	fromNodes, _ := policy.NodeCapacities(in.nodes, func(n *v1.Node) string { return nodeSite[n.Name] })
	limits, limitErr := policy.LimitsOf(sample, policy.SiteCapacities(store.Capacities(), fromNodes))
	if limitErr != nil {
		e.LimitError = fmt.Sprintf("%s rejects every node (UnschedulableAndUnresolvable): %v", trafficlatency.Name, limitErr)
	} else {
		e.Limits = describeLimits(limits, sites)
	}

	traffic := store.Traffic()
	prob := policy.Problem(sites, store.Matrix(sites), traffic, a.PerReplicaRPS)
	e.TrafficRPS = prob.TotalTraffic()
	current := policy.Current(sites, counted)
	var rank *policy.Ranking
	if e.TrafficRPS > 0 && len(sites) > 0 {
		r, err := policy.Rank(ctx, prob, current)
		if err != nil {
			return nil, fmt.Errorf("ranking sites: %w", err)
		}
		rank = &r
	}

	lp := policy.LoadPolicy(a.NodeLoad)
	for k, name := range sites {
		st := Site{Name: name, Nodes: len(siteNodes[k]), Replicas: counted[name], Usable: usable[k], OK: true}
		if v, ok := traffic[name]; ok {
			st.TrafficRPS = &v
		}
		cloud := true
		for _, n := range siteNodes[k] {
			if policy.Schedulable(n, sample) {
				st.Schedulable++
			}
			cloud = cloud && policy.IsCloud(n.Labels, a.CloudFallback)
		}
		st.Cloud = cloud && len(siteNodes[k]) > 0
		switch {
		case e.ConstraintError != "":
			st.OK, st.Reason = false, "see the delay constraints"
		case judgement != nil:
			v := judgement.Verdicts[name]
			st.OK, st.Reason = v.OK, v.Reason
			if v.OK && v.Unknown {
				st.Reason = "an RTT is unknown: passes because the constraints fail open"
			}
		}
		for _, r := range resolved {
			st.RTTs = append(st.RTTs, rttOf(store, r.FromSite, name))
		}
		if rank != nil {
			st.raw = rank.Raw[k]
			st.ShareRPS = rank.Gains.Share[k]
			if gainInMs(prob, current, k) {
				g, r := rank.Gains.Gain[k], rank.Raw[k]
				st.GainMs, st.Raw = &g, &r
			} else {
				e.RawNote = rawNote(current)
			}
			st.Gain = policy.DescribeGain(prob, current, k, rank.Gains.Share[k])
		}
		e.Sites = append(e.Sites, st)
	}

	// Nodes: ning's filters, then the candidates' scores as the framework
	// weighs them.
	var candidates []int
	for _, n := range nodes {
		k := siteIdx[nodeSite[n.Name]]
		nd := Node{Name: n.Name, Site: sites[k]}
		load, fresh := store.Load(n.Name)
		if fresh {
			c := load.CPU
			nd.CPU = &c
		}
		wlOf := policy.WorkloadOf(sample)
		for _, p := range members {
			if p.Spec.NodeName == n.Name && (target == nil || p.UID != target.UID) && p.UID != "" && wlOf.Owns(p) && wlOf.Kind != "Pod" {
				nd.Replicas++
			}
		}
		switch {
		case !policy.Schedulable(n, sample):
			nd.Filter = "not schedulable: not Ready, cordoned, or a taint the pod does not tolerate"
		case e.ConstraintError != "":
			nd.Filter = networklatency.Name + ": see the delay constraints"
		case !e.Sites[k].OK:
			nd.Filter = networklatency.Name + ": " + e.Sites[k].Reason
		case e.LimitError != "":
			nd.Filter = trafficlatency.Name + ": see the site limits"
		case limits.Full(sites[k], counted[sites[k]]):
			nd.Filter = trafficlatency.Name + ": " + limits.Reason(sites[k], counted[sites[k]])
		default:
			if why := policy.LoadRejection(lp, n.Name, load, fresh); why != "" {
				nd.Filter = nodeload.Name + ": " + why
			}
		}
		if nd.Filter == "" {
			candidates = append(candidates, len(e.Nodes))
		}
		e.Nodes = append(e.Nodes, nd)
	}
	var rawTL []int64
	for _, i := range candidates {
		rawTL = append(rawTL, e.Sites[siteIdx[e.Nodes[i].Site]].raw)
	}
	normTL := policy.Normalise(rawTL, framework.MaxNodeScore)
	for c, i := range candidates {
		nd := &e.Nodes[i]
		n := nodes[i]
		load, fresh := store.Load(n.Name)
		if rank != nil {
			st := &e.Sites[siteIdx[nd.Site]]
			var raw *float64
			if st.Raw != nil {
				raw = ptrTo(float64(rawTL[c]))
			}
			nd.Scores = append(nd.Scores, Score{Plugin: trafficlatency.Name, Raw: raw, Normalised: normTL[c], Weight: a.Weights.TrafficLatency})
			v := normTL[c]
			st.Normalised = &v
		}
		nlScore := policy.NodeLoadScore(lp, load, fresh, nd.Replicas, framework.MaxNodeScore)
		nd.Scores = append(nd.Scores, Score{Plugin: nodeload.Name, Raw: ptrTo(policy.NodeScore(lp, load, fresh, nd.Replicas)), Normalised: nlScore, Weight: a.Weights.NodeLoad})
		cf := policy.CloudScore(n.Labels, a.CloudFallback, framework.MaxNodeScore)
		nd.Scores = append(nd.Scores, Score{Plugin: cloudfallback.Name, Raw: ptrTo(float64(cf)), Normalised: cf, Weight: a.Weights.CloudFallback})
		for _, s := range nd.Scores {
			nd.Total += s.Normalised * int64(s.Weight)
		}
	}

	// kube-scheduler's default score plugins, run themselves.
	e.Default = "not scored (no cluster client)"
	if in.defaultsOff != "" {
		e.Default = in.defaultsOff
	}
	if in.client != nil {
		names := make([]string, len(candidates))
		for c, i := range candidates {
			names[c] = e.Nodes[i].Name
		}
		probe := sample
		if target == nil { // a Deployment's next replica: a new pod beside the others
			probe = sample.DeepCopy()
			probe.UID, probe.Spec.NodeName = "", ""
		}
		scores, err := defaultScores(ctx, in.client, probe, nodes, in.allPods, names)
		if err != nil {
			e.Default = "not scored: " + err.Error()
		} else {
			e.Default = defaultsNote
			for _, i := range candidates {
				nd := &e.Nodes[i]
				for _, s := range scores[nd.Name] {
					nd.Scores = append(nd.Scores, s)
					nd.Total += s.Normalised * int64(s.Weight)
				}
			}
		}
	}

	// The planner, over the usable sites, for every replica of the workload.
	e.Actual = placementOf(prob, policy.Current(sites, actual), sites)
	anyUsable := false
	for _, u := range usable {
		anyUsable = anyUsable || u
	}
	switch {
	case len(sites) == 0:
		e.PlanError = "no sites: the cluster has no nodes"
	case !anyUsable:
		e.PlanError = "no site is usable: none has a schedulable node that meets the delay constraints"
	case e.LimitError != "":
		e.PlanError = "no plan: the site limits are malformed"
	default:
		// The planner fills each site up to its limit, as the rescheduler's
		// plan does (policy.SiteLimits.Apply).
		limited := *prob
		limits.Apply(&limited)
		q := policy.Within(&limited, usable)
		q.Replicas = e.Workload.Replicas
		if plan, err := placement.Plan(ctx, q); err != nil {
			e.PlanError = fmt.Sprintf("no plan: %v", err)
		} else {
			e.Planned = placementOf(prob, plan, sites)
		}
	}
	e.Choice, e.RunnerUp = choose(e, prob, current, rank, siteIdx)
	return e, nil
}

// gainInMs reports whether TrafficLatency's gain for one more replica in
// site k is a number of ms: all the traffic reaches a replica at a known
// RTT before and after it. Otherwise the gain counts traffic at
// placement's unknown-RTT penalty, which no person may read.
func gainInMs(p *placement.Problem, current placement.Placement, k int) bool {
	if current.Total() == 0 {
		return false
	}
	after := append(placement.Placement(nil), current...)
	after[k]++
	_, before := policy.MeanRTT(p, current)
	_, then := policy.MeanRTT(p, after)
	return before && then
}

// rawNote says why gains and raw scores are not shown.
func rawNote(current placement.Placement) string {
	if current.Total() == 0 {
		return "first replica: TrafficLatency's raw scores and gains in ms are not shown, as no replica serves the traffic yet; the 0..100 scores and the words say what one replica there does"
	}
	return "TrafficLatency's raw score and gain in ms are not shown where some traffic reaches no replica at a known RTT (before or after one more replica there): the gain then counts that traffic reaching a replica at all, not ms; the 0..100 scores and the words say what one more replica there does"
}

func ptrTo[T any](v T) *T { return &v }

// describeLimits says l in words: the per-site limit, then each site's
// own where it is lower; "" when no site has a limit.
func describeLimits(l policy.SiteLimits, sites []string) string {
	if l.None() {
		return ""
	}
	var parts []string
	if l.PerSite != placement.Unlimited {
		parts = append(parts, fmt.Sprintf("at most %d replicas per site (%s)", l.PerSite, policy.LabelMaxPerSite))
	}
	var caps []string
	for _, s := range sites {
		if c, ok := l.Sites[s]; ok && (l.PerSite == placement.Unlimited || c < l.PerSite) {
			caps = append(caps, fmt.Sprintf("%s %d", s, c))
		}
	}
	if len(caps) > 0 {
		parts = append(parts, "site capacities: "+strings.Join(caps, ", "))
	}
	return strings.Join(parts, "; ")
}

// placementOf is x with its weighted mean RTT over p.
func placementOf(p *placement.Problem, x placement.Placement, sites []string) Placement {
	q := *p
	q.Replicas = x.Total()
	out := Placement{Replicas: x.Map(sites)}
	if v, ok := policy.MeanRTT(&q, x); ok {
		out.WeightedRTTMs = &v
	}
	return out
}

// choose finds the site the pod is in or would go to, and the runner-up:
// each site's best candidate node by total weighted score.
func choose(e *Explanation, prob *placement.Problem, current placement.Placement, rank *policy.Ranking, siteIdx map[string]int) (*Choice, *Choice) {
	bestNode := make([]int, len(e.Sites))
	for k := range bestNode {
		bestNode[k] = -1
	}
	for i, nd := range e.Nodes {
		if nd.Filter != "" {
			continue
		}
		k := siteIdx[nd.Site]
		if bestNode[k] < 0 || nd.Total > e.Nodes[bestNode[k]].Total {
			bestNode[k] = i
		}
	}
	top := -1
	for k, i := range bestNode {
		if i >= 0 && (top < 0 || e.Nodes[i].Total > e.Nodes[bestNode[top]].Total) {
			top = k
		}
	}
	chosen := top
	bound := e.Pod != nil && e.Pod.Node != ""
	if bound {
		k, ok := siteIdx[e.Pod.Site]
		if !ok { // its node is not in the node list (deleted, or new since)
			return &Choice{Site: e.Pod.Site, Node: e.Pod.Node, Why: "its node is not among the nodes listed (deleted, or joined since the list): no scores to compare"}, nil
		}
		chosen = k
	}
	if chosen < 0 {
		return nil, nil
	}
	gain := func(k int) string {
		if rank == nil {
			return ""
		}
		return policy.DescribeGain(prob, current, k, rank.Gains.Share[k])
	}
	c := &Choice{Site: e.Sites[chosen].Name, Gain: gain(chosen)}
	if i := bestNode[chosen]; i >= 0 {
		c.Node, c.Total = e.Nodes[i].Name, e.Nodes[i].Total
	}
	var own *Node // a bound pod's node
	if bound {
		c.Node = e.Pod.Node
		if i := indexOf(e.Nodes, c.Node); i >= 0 {
			own = &e.Nodes[i]
			c.Total = own.Total
		}
	}
	switch {
	case own != nil && own.Filter != "":
		c.Why = fmt.Sprintf("on today's data node %s fails ning's filters (%s): the data changed since the pod was placed", own.Name, own.Filter)
	case bound && top >= 0 && e.Nodes[bestNode[top]].Total > c.Total:
		c.Why = fmt.Sprintf("on today's data site %s scores higher (%d against %d): the data changed since the pod was placed, or a default plugin or the pod's own nodeName chose", e.Sites[top].Name, e.Nodes[bestNode[top]].Total, c.Total)
	case rank == nil:
		c.Why = "no fresh traffic data: TrafficLatency scores every node the same; NodeLoad and CloudFallback decide"
	default:
		c.Why = fmt.Sprintf("the highest total score: TrafficLatency ranks the site's marginal gain %s of %d sites with a candidate node", ordinal(rankOf(e.Sites, chosen)), candidateSites(e.Sites))
	}
	runner := -1
	for k, i := range bestNode {
		if k != chosen && i >= 0 && (runner < 0 || e.Nodes[i].Total > e.Nodes[bestNode[runner]].Total) {
			runner = k
		}
	}
	if runner < 0 {
		return c, nil
	}
	ru := &Choice{Site: e.Sites[runner].Name, Node: e.Nodes[bestNode[runner]].Name, Total: e.Nodes[bestNode[runner]].Total, Gain: gain(runner)}
	var why []string
	if ru.Total > c.Total {
		why = append(why, fmt.Sprintf("it scores higher now (%d against %d)", ru.Total, c.Total))
	} else {
		why = append(why, fmt.Sprintf("total score %d against %d", ru.Total, c.Total))
	}
	if rank != nil {
		why = append(why, rank.WhyBehind(prob, current, chosen, runner))
	}
	if i := indexOf(e.Nodes, c.Node); i >= 0 {
		nc, nr := e.Nodes[i], e.Nodes[bestNode[runner]]
		for _, s := range nr.Scores {
			if a := scoreOf(nc, s.Plugin); s.Plugin != trafficlatency.Name && a != s.Normalised {
				why = append(why, fmt.Sprintf("%s scores it %d against %d (weight %d)", s.Plugin, s.Normalised, a, s.Weight))
			}
		}
	}
	ru.Why = strings.Join(why, "; ")
	return c, ru
}

func indexOf(nodes []Node, name string) int {
	for i := range nodes {
		if nodes[i].Name == name {
			return i
		}
	}
	return -1
}

// candidateSites counts the sites with a candidate node.
func candidateSites(sites []Site) int {
	n := 0
	for _, s := range sites {
		if s.Normalised != nil {
			n++
		}
	}
	return n
}

func scoreOf(n Node, plugin string) int64 {
	for _, s := range n.Scores {
		if s.Plugin == plugin {
			return s.Normalised
		}
	}
	return 0
}

// rankOf is site k's place (1 = first) by TrafficLatency's raw score among
// the sites that have a candidate node.
func rankOf(sites []Site, k int) int {
	n := 1
	for j := range sites {
		if j != k && sites[j].Normalised != nil && sites[j].raw > sites[k].raw {
			n++
		}
	}
	return n
}

func ordinal(n int) string {
	switch n {
	case 1:
		return "first"
	case 2:
		return "second"
	case 3:
		return "third"
	}
	return fmt.Sprintf("%dth", n)
}

// rttOf is the RTT from site from to site to and how old it is.
func rttOf(store Store, from, to string) RTT {
	d := store.Detail(from, to)
	r := RTT{FromSite: from, Static: d.Static}
	if d.Known {
		v := d.Ms
		r.Ms = &v
	}
	if !d.Measured.IsZero() {
		t := d.Measured
		r.Measured = &t
	}
	return r
}

func siteOfNode(nodeSite map[string]string, node string) string {
	if s, ok := nodeSite[node]; ok {
		return s
	}
	return node // a node not listed is, like one without the label, a site of its own
}

// selectPods finds the pod asked for (nil for a deployment) and its
// workload's live pods (policy.Counts), sorted by name.
func selectPods(in inputs) (*v1.Pod, []*v1.Pod, error) {
	live := policy.Counts
	var target *v1.Pod
	var w policy.Workload
	switch in.kind {
	case KindPod:
		for _, p := range in.pods {
			if p.Name == in.name {
				target = p
			}
		}
		if target == nil {
			return nil, nil, fmt.Errorf("pod %s/%s: %w", in.namespace, in.name, errNotFound)
		}
		if target.Spec.SchedulerName != in.schedulerName {
			return nil, nil, fmt.Errorf("pod %s/%s has schedulerName %q, not %q: ning does not place it", in.namespace, in.name, target.Spec.SchedulerName, in.schedulerName)
		}
		w = policy.WorkloadOf(target)
	case KindDeployment:
		// During a rollout the Deployment has pods of two ReplicaSets; the
		// newest pod's is the one being placed.
		var newest time.Time
		for _, p := range in.pods {
			wl := policy.WorkloadOf(p)
			if p.Spec.SchedulerName != in.schedulerName || !live(p) || deploymentOf(p, wl) != in.name {
				continue
			}
			if t := p.CreationTimestamp.Time; w.UID == "" || t.After(newest) {
				w, newest = wl, t
			}
		}
		if w.UID == "" {
			return nil, nil, fmt.Errorf("deployment %s/%s: no live pods with schedulerName %s: %w", in.namespace, in.name, in.schedulerName, errNotFound)
		}
	default:
		return nil, nil, fmt.Errorf("kind %q: want pod or deployment", in.kind)
	}
	var members []*v1.Pod
	for _, p := range in.pods {
		if p.Spec.SchedulerName == in.schedulerName && (p == target || (live(p) && w.Owns(p))) {
			members = append(members, p)
		}
	}
	sort.Slice(members, func(i, j int) bool { return members[i].Name < members[j].Name })
	return target, members, nil
}

// deploymentOf names the Deployment a ReplicaSet's pod comes from, told
// from its pod-template-hash label, as ning status does; "" otherwise.
func deploymentOf(p *v1.Pod, w policy.Workload) string {
	if hash := p.Labels["pod-template-hash"]; w.Kind == "ReplicaSet" && hash != "" {
		if d, ok := strings.CutSuffix(w.Name, "-"+hash); ok {
			return d
		}
	}
	return ""
}

// pendingReason is the scheduler's word on a pod it has not bound.
func pendingReason(p *v1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse {
			if c.Message != "" {
				return c.Reason + ": " + c.Message
			}
			return c.Reason
		}
	}
	return "not scheduled yet (no PodScheduled condition: the scheduler has not tried it, or is not running)"
}

// decisions are ning's decisions about the pod, newest first: the
// scheduler's placement note (policy.PlacementNote) and ning's Events.
func decisions(events []*v1.Event, pod *v1.Pod) []Decision {
	var out []Decision
	if note, at, ok := policy.PlacementNote(pod); ok {
		out = append(out, Decision{Time: at, Reason: policy.ReasonPlacement, Message: note})
	}
	for _, ev := range events {
		if ev.InvolvedObject.Name != pod.Name || (ev.InvolvedObject.Kind != "" && ev.InvolvedObject.Kind != "Pod") || !strings.HasPrefix(ev.Reason, "Ning") {
			continue
		}
		t := ev.LastTimestamp.Time
		if t.IsZero() {
			t = ev.EventTime.Time
		}
		if t.IsZero() {
			t = ev.CreationTimestamp.Time
		}
		out = append(out, Decision{Time: t, Reason: ev.Reason, Message: ev.Message})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out
}

func podsByName(pods []*v1.Pod) map[string]*v1.Pod {
	m := make(map[string]*v1.Pod, len(pods))
	for _, p := range pods {
		m[p.Name] = p
	}
	return m
}

// locator is policy.Locator over the listed nodes and the namespace's pods.
type locator struct {
	nodeSite map[string]string
	siteIdx  map[string]int
	pods     map[string]*v1.Pod
}

func (l locator) SiteOfNode(name string) (string, bool) {
	s, ok := l.nodeSite[name]
	return s, ok
}

func (l locator) HasSite(site string) bool { _, ok := l.siteIdx[site]; return ok }

func (l locator) NodeOfPod(_, name string) (string, bool) {
	p, ok := l.pods[name]
	if !ok {
		return "", false
	}
	return p.Spec.NodeName, true
}
