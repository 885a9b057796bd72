// Package siteindex keeps, from the scheduler's informers, each node's site and
// how many replicas of each workload run in each site and on each node, so
// that a plugin reads them in O(sites) or O(1) per node instead of walking
// every node and pod.
package siteindex

import (
	"fmt"
	"sort"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/topology"
)

type podEntry struct {
	workload types.UID
	node     string
	assumed  bool
}

// Index is safe for concurrent use.
type Index struct {
	label string
	// synced are the informer registrations' HasSynced.
	synced []cache.InformerSynced

	mu        sync.RWMutex
	nodeSite  map[string]string
	siteNodes map[string]int
	nodePods  map[string]map[types.UID]struct{}
	pods      map[types.UID]podEntry
	counts    map[types.UID]map[string]int // by workload, then site
	// nodeCounts is counts by node: each node that has pods of the workload.
	nodeCounts map[types.UID]map[string]int
	sites      []string // sorted; nil when it must be rebuilt
	// nodeCap is the ning.io/site-capacity of each node that has a valid
	// one, badCap why each node with a malformed one was ignored.
	nodeCap map[string]int
	badCap  map[string]error
	caps    map[string]int // per site; nil when it must be rebuilt
}

// New builds an index fed by the factory's node informer and, with trackPods,
// its pod informer (register before the factory starts, as plugin
// constructors do). Without trackPods, Counts is always empty.
func New(f informers.SharedInformerFactory, siteLabel string, trackPods bool) (*Index, error) {
	x := newIndex(siteLabel)
	reg, err := f.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { x.setNode(obj) },
		UpdateFunc: func(_, obj any) { x.setNode(obj) },
		DeleteFunc: x.deleteNode,
	})
	if err != nil {
		return nil, fmt.Errorf("watching nodes: %w", err)
	}
	x.synced = append(x.synced, reg.HasSynced)
	if !trackPods {
		return x, nil
	}
	reg, err = f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { x.setPod(obj) },
		UpdateFunc: func(_, obj any) { x.setPod(obj) },
		DeleteFunc: x.deletePod,
	})
	if err != nil {
		return nil, fmt.Errorf("watching pods: %w", err)
	}
	x.synced = append(x.synced, reg.HasSynced)
	return x, nil
}

// HasSynced reports whether the index has seen the informers' initial lists.
func (x *Index) HasSynced() bool {
	for _, s := range x.synced {
		if !s() {
			return false
		}
	}
	return true
}

func newIndex(siteLabel string) *Index {
	return &Index{
		label:      siteLabel,
		nodeSite:   map[string]string{},
		siteNodes:  map[string]int{},
		nodePods:   map[string]map[types.UID]struct{}{},
		pods:       map[types.UID]podEntry{},
		counts:     map[types.UID]map[string]int{},
		nodeCounts: map[types.UID]map[string]int{},
		nodeCap:    map[string]int{},
		badCap:     map[string]error{},
	}
}

func unwrap(obj any) any {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return d.Obj
	}
	return obj
}

func (x *Index) setNode(obj any) {
	n, ok := unwrap(obj).(*v1.Node)
	if !ok {
		return
	}
	site := topology.SiteOf(n.Name, n.Labels, x.label)
	capacity, capErr := policy.NodeSiteCapacity(n.Labels)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.setCapacity(n.Name, capacity, capErr)
	old, had := x.nodeSite[n.Name]
	if had && old == site {
		return
	}
	if had {
		x.dropSite(old)
	}
	x.moveNodePods(n.Name, old, site) // old is "" for a new node whose pods came first
	x.nodeSite[n.Name] = site
	x.siteNodes[site]++
	x.sites = nil
	x.caps = nil
}

func (x *Index) deleteNode(obj any) {
	n, ok := unwrap(obj).(*v1.Node)
	if !ok {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	site, had := x.nodeSite[n.Name]
	if !had {
		return
	}
	x.moveNodePods(n.Name, site, "")
	delete(x.nodeSite, n.Name)
	x.setCapacity(n.Name, placement.Unlimited, nil)
	x.dropSite(site)
}

// setCapacity records a node's ning.io/site-capacity label (err: malformed).
func (x *Index) setCapacity(node string, capacity int, err error) {
	old, had := x.nodeCap[node]
	delete(x.nodeCap, node)
	delete(x.badCap, node)
	switch {
	case err != nil:
		x.badCap[node] = err
	case capacity != placement.Unlimited:
		x.nodeCap[node] = capacity
	}
	if now, has := x.nodeCap[node]; had != has || old != now {
		x.caps = nil
	}
}

// SiteCapacities returns each site's capacity from its nodes'
// ning.io/site-capacity labels (the smallest where they disagree; a site
// with none is not listed), and the nodes whose label is malformed and
// ignored, sorted, each with why. Do not modify the map.
func (x *Index) SiteCapacities() (map[string]int, []error) {
	x.mu.RLock()
	caps, bad := x.caps, x.badList()
	x.mu.RUnlock()
	if caps != nil {
		return caps, bad
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.caps == nil {
		byNode := make(map[string]int, len(x.nodeCap))
		for node, c := range x.nodeCap {
			if site, ok := x.nodeSite[node]; ok {
				if old, seen := byNode[site]; !seen || c < old {
					byNode[site] = c
				}
			}
		}
		x.caps = byNode
	}
	return x.caps, x.badList()
}

func (x *Index) badList() []error {
	if len(x.badCap) == 0 {
		return nil
	}
	nodes := make([]string, 0, len(x.badCap))
	for node := range x.badCap {
		nodes = append(nodes, node)
	}
	sort.Strings(nodes)
	out := make([]error, len(nodes))
	for i, node := range nodes {
		out[i] = fmt.Errorf("node %s: %w", node, x.badCap[node])
	}
	return out
}

func (x *Index) dropSite(site string) {
	if x.siteNodes[site]--; x.siteNodes[site] <= 0 {
		delete(x.siteNodes, site)
	}
	x.sites = nil
}

// moveNodePods recounts the pods of a node whose site changed ("" = none).
func (x *Index) moveNodePods(node, from, to string) {
	for uid := range x.nodePods[node] {
		w := x.pods[uid].workload
		addCount(x.counts, w, from, -1)
		addCount(x.counts, w, to, 1)
	}
}

// addCount adds d to counts[w][key] ("" = none), dropping zeros.
func addCount(counts map[types.UID]map[string]int, w types.UID, key string, d int) {
	if key == "" {
		return
	}
	m := counts[w]
	if m == nil {
		m = map[string]int{}
		counts[w] = m
	}
	if m[key] += d; m[key] <= 0 {
		delete(m, key)
		if len(m) == 0 {
			delete(counts, w)
		}
	}
}

func (x *Index) setPod(obj any) {
	p, ok := unwrap(obj).(*v1.Pod)
	if !ok {
		return
	}
	if !policy.Counts(p) {
		x.remove(p.UID, false)
		return
	}
	// A pod not bound yet has no entry of the informer's (a pod's node is
	// never unset), only an assumed one (Reserve, the extender's /bind),
	// which stays until the pod is bound, forgotten or expires: the
	// informer's first sight of a pod created a moment ago, or a status
	// update of a pending one, arrives after it was assumed.
	if p.Spec.NodeName == "" {
		return
	}
	x.put(p.UID, podEntry{workload: policy.WorkloadOf(p).UID, node: p.Spec.NodeName})
}

func (x *Index) deletePod(obj any) {
	if p, ok := unwrap(obj).(*v1.Pod); ok {
		x.remove(p.UID, false)
	}
}

func (x *Index) put(uid types.UID, e podEntry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.pods[uid]; ok {
		if old.node == e.node && old.workload == e.workload {
			x.pods[uid] = e
			return
		}
		x.removeLocked(uid, old)
	}
	x.pods[uid] = e
	if x.nodePods[e.node] == nil {
		x.nodePods[e.node] = map[types.UID]struct{}{}
	}
	x.nodePods[e.node][uid] = struct{}{}
	addCount(x.counts, e.workload, x.nodeSite[e.node], 1)
	addCount(x.nodeCounts, e.workload, e.node, 1)
}

// remove drops a pod; with onlyAssumed, only if it is still merely assumed.
// It reports whether it dropped one.
func (x *Index) remove(uid types.UID, onlyAssumed bool) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.pods[uid]
	if ok && (!onlyAssumed || e.assumed) {
		x.removeLocked(uid, e)
		return true
	}
	return false
}

func (x *Index) removeLocked(uid types.UID, e podEntry) {
	delete(x.pods, uid)
	if m := x.nodePods[e.node]; m != nil {
		delete(m, uid)
		if len(m) == 0 {
			delete(x.nodePods, e.node)
		}
	}
	addCount(x.counts, e.workload, x.nodeSite[e.node], -1)
	addCount(x.nodeCounts, e.workload, e.node, -1)
}

// Assume counts a pod on a node before the informer sees it bound (the
// scheduler's Reserve), so that the next pod of the workload sees it.
func (x *Index) Assume(pod *v1.Pod, node string) {
	x.put(pod.UID, podEntry{workload: policy.WorkloadOf(pod).UID, node: node, assumed: true})
}

// Forget undoes Assume (Unreserve) unless the informer has seen the pod
// bound, and reports whether it did.
func (x *Index) Forget(pod *v1.Pod) bool { return x.remove(pod.UID, true) }

// Assumed reports whether the pod counts only as assumed: Assume placed it
// and the informer has not yet seen it bound.
func (x *Index) Assumed(pod *v1.Pod) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.pods[pod.UID]
	return ok && e.assumed
}

// Sites returns every site that has a node, sorted. Do not modify the slice.
func (x *Index) Sites() []string {
	x.mu.RLock()
	s := x.sites
	x.mu.RUnlock()
	if s != nil {
		return s
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.sites == nil {
		x.sites = make([]string, 0, len(x.siteNodes))
		for site := range x.siteNodes {
			x.sites = append(x.sites, site)
		}
		sort.Strings(x.sites)
	}
	return x.sites
}

// SiteOfNode returns a node's site.
func (x *Index) SiteOfNode(name string) (string, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	s, ok := x.nodeSite[name]
	return s, ok
}

// HasSite reports whether a site of that name has a node.
func (x *Index) HasSite(site string) bool {
	sites := x.Sites()
	i := sort.SearchStrings(sites, site)
	return i < len(sites) && sites[i] == site
}

// Locator finds nodes and sites in the index and pods in pods, for
// policy.Resolve.
func (x *Index) Locator(pods corelisters.PodLister) policy.Locator {
	return locator{x, pods}
}

type locator struct {
	*Index
	pods corelisters.PodLister
}

func (l locator) NodeOfPod(namespace, name string) (string, bool) {
	p, err := l.pods.Pods(namespace).Get(name)
	if err != nil {
		return "", false
	}
	return p.Spec.NodeName, true
}

// Counts returns how many replicas of workload run (or are assumed) per site,
// not counting the pod exclude.
func (x *Index) Counts(workload, exclude types.UID) map[string]int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make(map[string]int, len(x.counts[workload]))
	for site, n := range x.counts[workload] {
		out[site] = n
	}
	if e, ok := x.pods[exclude]; ok && e.workload == workload {
		if site := x.nodeSite[e.node]; site != "" {
			if out[site]--; out[site] <= 0 {
				delete(out, site)
			}
		}
	}
	return out
}

// NodeCounts returns how many pods of the workload run (or are assumed) on
// each node that has one: the pods of the scheduler's NodeInfo that w owns
// (policy.Workload.Owns), without those being deleted. A bare pod's workload
// has no other pod: none. The map is the caller's.
func (x *Index) NodeCounts(w policy.Workload) map[string]int {
	if w.Kind == "Pod" {
		return map[string]int{}
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make(map[string]int, len(x.nodeCounts[w.UID]))
	for node, n := range x.nodeCounts[w.UID] {
		out[node] = n
	}
	return out
}
