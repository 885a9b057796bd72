// Package dashboard watches a cluster and ning's topology store and keeps a
// live view of them: the sites and their nodes, the RTT matrix, the traffic
// per site, each ning-scheduled workload's replicas per site with the
// traffic-weighted mean RTT of that placement, replicas per site over time, and
// ning's recent decisions from Events. It serves that view as a web page and as
// JSON, and prints it as the table of `ning status`.
package dashboard

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/topology"
)

// Snapshot is the dashboard's view at one instant.
type Snapshot struct {
	// Time is when the snapshot was taken.
	Time time.Time `json:"time"`
	// Synced is false until the collector's informers have listed the cluster.
	Synced bool `json:"synced"`
	// Sites are every site that has a node or that the store knows of, sorted.
	Sites []Site `json:"sites"`
	// RTTMs[i][j] is the RTT in ms from Sites[i] to Sites[j]; nil is unknown
	// (never measured, or stale), never zero.
	RTTMs [][]*float64 `json:"rttMs"`
	// Busiest is the site with the most traffic; "" without traffic data.
	Busiest string `json:"busiest"`
	// Workloads are the ning-scheduled workloads, sorted by namespace and name.
	Workloads []Workload `json:"workloads"`
	// History is the replicas per site of every ning-scheduled pod over time,
	// oldest first.
	History []Sample `json:"history"`
	// Decisions are ning's recent Events, newest first.
	Decisions []Decision `json:"decisions"`
	// DelayZones are seed 002's delay layers: for each delay (the
	// configured ones and each distinct delay_<from> value on the pods
	// shown), keyed as "30ms", the sites grouped into clusters in which
	// every pair is within that delay of each other (placement.Layers).
	DelayZones map[string][][]string `json:"delayZones,omitempty"`
	// Updates says when the store last received each kind of data.
	Updates Updates `json:"updates"`
	// Comparison is ning's placement beside the default scheduler's and the
	// optimum's, where something runs both (ning demo); nil otherwise.
	Comparison *Comparison `json:"comparison,omitempty"`
	// Measured is the lab benchmark's measured response times of ning, the
	// default scheduler and the optimum (ning dashboard --measured); nil
	// without one.
	Measured *Measured `json:"measured,omitempty"`
	// Error says why the snapshot is empty, if it is for a failure.
	Error string `json:"error,omitempty"`
}

// Comparison sets one workload placed by ning beside the same workload
// placed by kube-scheduler's default profile and the exact optimum.
type Comparison struct {
	// Workload is ning's, as namespace/name; Basis says how the weighted
	// RTTs were computed (for instance "modelled: the topology's RTTs and
	// the traffic now").
	Workload string       `json:"workload"`
	Basis    string       `json:"basis"`
	Rows     []CompareRow `json:"rows"`
}

// The names of a Comparison's rows.
const (
	CompareNing    = "ning"
	CompareDefault = "default kube-scheduler"
	CompareOptimum = "exact optimum"
)

// CompareRow is one placement of a Comparison.
type CompareRow struct {
	// Name is CompareNing, CompareDefault or CompareOptimum.
	Name string `json:"name"`
	// WeightedRTTMs is the placement's traffic-weighted mean RTT; nil when
	// it cannot be told (no replica yet, or traffic at an unknown RTT).
	WeightedRTTMs *float64       `json:"weightedRttMs"`
	Placement     map[string]int `json:"placement"`
}

// Updates says when the store last received each kind of data; the zero
// time is never.
type Updates struct {
	RTT     time.Time `json:"rtt"`
	Traffic time.Time `json:"traffic"`
	Load    time.Time `json:"load"`
}

// Site is one site.
type Site struct {
	Name string `json:"name"`
	// Nodes counts the site's nodes, Ready those whose Ready condition is True.
	Nodes int `json:"nodes"`
	Ready int `json:"ready"`
	// TrafficRPS is the request rate entering at the site; nil without a
	// fresh figure.
	TrafficRPS *float64 `json:"trafficRps"`
	// Replicas counts the ning-scheduled pods running in the site.
	Replicas int `json:"replicas"`
}

// Workload is the set of pods one controller owns (or a bare pod), grouped as
// the scheduler plugins group them (policy.WorkloadOf).
type Workload struct {
	Namespace string `json:"namespace"`
	// Name and Kind are the controller's ("web-5d9c7", "ReplicaSet"), or the
	// pod's for a bare pod.
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Deployment names the Deployment a ReplicaSet belongs to, told from the
	// pod-template-hash label; "" otherwise.
	Deployment string `json:"deployment,omitempty"`
	// Replicas is the number of bound pods per site; Pending counts the pods
	// not bound yet.
	Replicas map[string]int `json:"replicas"`
	Pending  int            `json:"pending"`
	// WeightedRTTMs is the traffic-weighted mean RTT of this placement, each
	// site's traffic going to its nearest replica with spare capacity
	// (placement.Problem.Cost, with Options.PerReplicaRPS); nil
	// without replicas, without traffic, or when some traffic has no replica
	// at a known RTT.
	WeightedRTTMs *float64 `json:"weightedRttMs"`
	// LastDecision is the newest decision about one of its pods, if any.
	LastDecision *Decision `json:"lastDecision,omitempty"`
}

// Key is "namespace/name", the name being the Deployment's when the pods
// come from one.
func (w *Workload) Key() string {
	if w.Deployment != "" {
		return w.Namespace + "/" + w.Deployment
	}
	return w.Namespace + "/" + w.Name
}

// Total is the number of bound replicas.
func (w *Workload) Total() int {
	n := 0
	for _, v := range w.Replicas {
		n += v
	}
	return n
}

// Sample is the replicas per site of every ning-scheduled pod at one time.
type Sample struct {
	Time     time.Time      `json:"time"`
	Replicas map[string]int `json:"replicas"`
}

// Decision is one of ning's Events (reason starting with "Ning").
type Decision struct {
	Time      time.Time `json:"time"`
	Reason    string    `json:"reason"`
	Type      string    `json:"type"`
	Namespace string    `json:"namespace"`
	// Kind and Name are the object the Event is about, usually a Pod.
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Message string `json:"message"`
	Count   int32  `json:"count"`
}

// Select returns the snapshot with only the workload named "namespace/name"
// (the controller's name, or its Deployment's); "" keeps them all.
func (s Snapshot) Select(workload string) (Snapshot, error) {
	if workload == "" {
		return s, nil
	}
	ns, name, ok := strings.Cut(workload, "/")
	if !ok || ns == "" || name == "" {
		return Snapshot{}, fmt.Errorf("workload %q: want namespace/name", workload)
	}
	var keep []Workload
	for _, w := range s.Workloads {
		if w.Namespace == ns && (w.Name == name || w.Deployment == name) {
			keep = append(keep, w)
		}
	}
	if len(keep) == 0 {
		known := make([]string, 0, len(s.Workloads))
		for _, w := range s.Workloads {
			known = append(known, w.Key())
		}
		if len(known) == 0 {
			return Snapshot{}, fmt.Errorf("workload %s: no ning-scheduled workload found", workload)
		}
		return Snapshot{}, fmt.Errorf("workload %s not found; known: %s", workload, strings.Join(known, ", "))
	}
	s.Workloads = keep
	return s, nil
}

// Store is what the dashboard reads from the topology store.
type Store interface {
	Sites() []string
	Matrix(sites []string) [][]float64
	Traffic() map[string]float64
	LastUpdates() topology.Updates
}

// inputs is everything a snapshot is built from.
type inputs struct {
	nodes      []*v1.Node
	pods       []*v1.Pod // ning-scheduled pods only
	events     []*v1.Event
	siteLabel  string
	decisions  int     // how many to keep
	perReplica float64 // Options.PerReplicaRPS
	// delayLayers are Options.DelayLayersMs.
	delayLayers []float64
}

// build computes a snapshot (without Time, Synced and History) from the
// cluster's objects and the store.
func build(in inputs, store Store) Snapshot {
	var s Snapshot
	nodeSite := make(map[string]string, len(in.nodes))
	perSite := map[string]*Site{}
	site := func(name string) *Site {
		if perSite[name] == nil {
			perSite[name] = &Site{Name: name}
		}
		return perSite[name]
	}
	for _, n := range in.nodes {
		name := topology.SiteOf(n.Name, n.Labels, in.siteLabel)
		nodeSite[n.Name] = name
		st := site(name)
		st.Nodes++
		if ready(n) {
			st.Ready++
		}
	}
	for _, name := range store.Sites() {
		site(name)
	}
	traffic := store.Traffic()
	for name, rps := range traffic {
		v := rps
		site(name).TrafficRPS = &v
	}
	s.Decisions = decisions(in.events, in.pods)
	byUID := map[types.UID]*Workload{}
	podWorkload := map[[2]string]*Workload{} // namespace, pod name
	for _, p := range in.pods {
		if p.DeletionTimestamp != nil || p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			continue
		}
		uid := policy.WorkloadOf(p).UID
		w := byUID[uid]
		if w == nil {
			w = newWorkload(p)
			byUID[uid] = w
		}
		podWorkload[[2]string{p.Namespace, p.Name}] = w
		if p.Spec.NodeName == "" {
			w.Pending++
			continue
		}
		name, ok := nodeSite[p.Spec.NodeName]
		if !ok {
			// A node the cache does not hold (deleted, or not listed yet)
			// is, like a node without the label, a site of its own.
			name = p.Spec.NodeName
		}
		w.Replicas[name]++
		site(name).Replicas++
	}
	names := make([]string, 0, len(perSite))
	for name := range perSite {
		names = append(names, name)
	}
	sort.Strings(names)
	matrix := store.Matrix(names)
	s.RTTMs = make([][]*float64, len(names))
	for i := range names {
		s.RTTMs[i] = make([]*float64, len(names))
		for j := range names {
			if v := matrix[i][j]; !math.IsInf(v, 1) && !math.IsNaN(v) {
				s.RTTMs[i][j] = &v
			}
		}
	}
	if delays := zoneDelays(in); len(delays) > 0 {
		s.DelayZones = placement.NewLayers(names, matrix, delays).Named()
	}
	best := 0.0
	for _, name := range names {
		if rps, ok := traffic[name]; ok && rps > best {
			s.Busiest, best = name, rps
		}
	}

	for _, name := range names {
		s.Sites = append(s.Sites, *perSite[name])
	}
	for _, w := range byUID {
		w.WeightedRTTMs = weightedRTT(w.Replicas, s.Sites, s.RTTMs, in.perReplica)
		w.LastDecision = lastDecision(w, s.Decisions, podWorkload)
		s.Workloads = append(s.Workloads, *w)
	}
	sort.Slice(s.Workloads, func(i, j int) bool {
		a, b := &s.Workloads[i], &s.Workloads[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Kind < b.Kind
	})
	if in.decisions >= 0 && len(s.Decisions) > in.decisions {
		s.Decisions = s.Decisions[:in.decisions]
	}
	u := store.LastUpdates()
	s.Updates = Updates{RTT: u.RTT, Traffic: u.Traffic, Load: u.Load}
	return s
}

// zoneDelays are the delays whose zones a snapshot shows: the configured
// ones and each distinct delay_<from> value on the pods (a malformed label
// is the scheduler's to report; its valid neighbours still count), sorted.
func zoneDelays(in inputs) []float64 {
	seen := map[float64]bool{}
	var out []float64
	add := func(d float64) {
		if !seen[d] && len(out) < placement.MaxDelayLayers {
			seen[d] = true
			out = append(out, d)
		}
	}
	for _, d := range in.delayLayers {
		add(d)
	}
	for _, p := range in.pods {
		cs, _ := placement.ParseConstraints(p.Labels)
		for _, c := range cs {
			add(c.MaxMs)
		}
	}
	sort.Float64s(out)
	return out
}

func ready(n *v1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

func newWorkload(p *v1.Pod) *Workload {
	ref := policy.WorkloadOf(p)
	w := &Workload{Namespace: p.Namespace, Name: ref.Name, Kind: ref.Kind, Replicas: map[string]int{}}
	if hash := p.Labels["pod-template-hash"]; ref.Kind == "ReplicaSet" && hash != "" {
		if d, ok := strings.CutSuffix(ref.Name, "-"+hash); ok && d != "" {
			w.Deployment = d
		}
	}
	return w
}

// weightedRTT is the traffic-weighted mean RTT of a placement, or nil when it
// cannot be told (policy.MeanRTT): no replica, no traffic, or traffic served
// at an unknown RTT.
func weightedRTT(replicas map[string]int, sites []Site, rtt [][]*float64, perReplicaRPS float64) *float64 {
	names := make([]string, len(sites))
	traffic := make(map[string]float64, len(sites))
	matrix := make([][]float64, len(sites))
	for i, st := range sites {
		names[i] = st.Name
		if st.TrafficRPS != nil {
			traffic[st.Name] = *st.TrafficRPS
		}
		matrix[i] = make([]float64, len(sites))
		for j := range sites {
			matrix[i][j] = math.Inf(1)
			if v := rtt[i][j]; v != nil {
				matrix[i][j] = *v
			}
		}
	}
	p := policy.Problem(names, matrix, traffic, perReplicaRPS)
	x := policy.Current(names, replicas)
	p.Replicas = x.Total()
	if err := p.Validate(); err != nil {
		return nil
	}
	v, known := policy.MeanRTT(p, x)
	if !known {
		return nil
	}
	return &v
}

// decisions returns ning's decisions, newest first: its Events and the
// scheduler's placement notes on the pods (policy.PlacementNote).
func decisions(events []*v1.Event, pods []*v1.Pod) []Decision {
	var out []Decision
	for _, p := range pods {
		if note, at, ok := policy.PlacementNote(p); ok {
			out = append(out, Decision{
				Time: at, Reason: policy.ReasonPlacement, Type: v1.EventTypeNormal,
				Namespace: p.Namespace, Kind: "Pod", Name: p.Name, Message: note, Count: 1,
			})
		}
	}
	for _, e := range events {
		if !strings.HasPrefix(e.Reason, "Ning") {
			continue
		}
		count := e.Count
		if e.Series != nil && e.Series.Count > count {
			count = e.Series.Count
		}
		if count < 1 {
			count = 1
		}
		out = append(out, Decision{
			Time: eventTime(e), Reason: e.Reason, Type: e.Type,
			Namespace: e.InvolvedObject.Namespace, Kind: e.InvolvedObject.Kind, Name: e.InvolvedObject.Name,
			Message: e.Message, Count: count,
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.After(out[j].Time)
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// eventTime is when an Event last happened, whichever API wrote it: the
// events.k8s.io API sets EventTime and Series, the core one the timestamps.
func eventTime(e *v1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// lastDecision is the newest decision about one of the workload's current
// pods, or about a pod named like the controller's pods ("<name>-...") in the
// same namespace: a pod the rescheduler moved no longer exists.
func lastDecision(w *Workload, ds []Decision, pods map[[2]string]*Workload) *Decision {
	for i := range ds {
		d := &ds[i]
		if d.Kind != "" && d.Kind != "Pod" || d.Namespace != w.Namespace {
			continue
		}
		if pods[[2]string{d.Namespace, d.Name}] == w || (w.Kind != "Pod" && strings.HasPrefix(d.Name, w.Name+"-")) {
			c := *d
			return &c
		}
	}
	return nil
}
