// Package nodesim stands in for kubelets on simulated nodes, for ning's demo
// and tests against a real apiserver where no kubelet runs: it creates nodes
// Ready, renews their Leases, starts the pods bound to them (Running and
// Ready), and finishes the deletion of their terminating pods, as a kubelet
// does once the containers have stopped. Stop makes a node fall silent, as a
// powered-off machine does; Resume brings it back.
//
// ning uses this rather than KWOK because KWOK cannot be imported as a library
// at this Kubernetes version and would be one more binary to install.
package nodesim

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
)

// LeaseNamespace holds the node Leases, as on a real cluster.
const LeaseNamespace = v1.NamespaceNodeLease

// Node describes a simulated node.
type Node struct {
	Name string
	// Site is the topology.kubernetes.io/zone label; empty for none.
	Site   string
	CPU    string // default "8"
	Memory string // default "32Gi"
	Pods   string // default "110"
	Labels map[string]string
}

// CreateReadyNode creates a node that a scheduler will use: capacity set,
// Ready, and without the not-ready taint that admission adds (no kubelet or
// node lifecycle controller runs to remove it).
func CreateReadyNode(ctx context.Context, c kubernetes.Interface, s Node) (*v1.Node, error) {
	labels := map[string]string{v1.LabelHostname: s.Name}
	if s.Site != "" {
		labels[v1.LabelTopologyZone] = s.Site
	}
	for k, v := range s.Labels {
		labels[k] = v
	}
	n, err := c.CoreV1().Nodes().Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating node %s: %w", s.Name, err)
	}
	var taints []v1.Taint
	for _, tn := range n.Spec.Taints {
		if tn.Key != v1.TaintNodeNotReady {
			taints = append(taints, tn)
		}
	}
	n.Spec.Taints = taints
	if n, err = c.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		return nil, fmt.Errorf("untainting node %s: %w", s.Name, err)
	}
	rl := v1.ResourceList{}
	for name, q := range map[v1.ResourceName]string{v1.ResourceCPU: orDefault(s.CPU, "8"), v1.ResourceMemory: orDefault(s.Memory, "32Gi"), v1.ResourcePods: orDefault(s.Pods, "110")} {
		v, err := resource.ParseQuantity(q)
		if err != nil {
			return nil, fmt.Errorf("node %s: %s %q: %w", s.Name, name, q, err)
		}
		rl[name] = v
	}
	now := metav1.Now()
	n.Status.Capacity, n.Status.Allocatable, n.Status.Phase = rl, rl, v1.NodeRunning
	n.Status.Conditions = []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now}}
	n, err = c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("marking node %s ready: %w", s.Name, err)
	}
	return n, nil
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// Options tune the simulator.
type Options struct {
	// LeaseDuration is the Lease's leaseDurationSeconds; default 40 s, the
	// kubelet's.
	LeaseDuration time.Duration
	// RenewInterval is how often a live node renews its Lease; default 2 s.
	RenewInterval time.Duration
	// StartDelay is how long a bound pod takes to become Running and Ready.
	StartDelay time.Duration
}

// Simulator runs the simulated nodes' kubelets.
type Simulator struct {
	client kubernetes.Interface
	o      Options
	log    *slog.Logger
	queue  workqueue.TypedDelayingInterface[string]
	pods   cache.Indexer

	mu    sync.Mutex
	nodes map[string]bool // name -> live
}

// New returns a simulator; add nodes with AddNode and start it with Run.
func New(client kubernetes.Interface, o Options, log *slog.Logger) *Simulator {
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = 40 * time.Second
	}
	if o.RenewInterval <= 0 {
		o.RenewInterval = 2 * time.Second
	}
	return &Simulator{client: client, o: o, log: log, nodes: map[string]bool{},
		queue: workqueue.NewTypedDelayingQueue[string]()}
}

// AddNode creates the node Ready, with a fresh Lease, and simulates it.
func (s *Simulator) AddNode(ctx context.Context, n Node) error {
	if _, err := CreateReadyNode(ctx, s.client, n); err != nil {
		return err
	}
	if err := s.renew(ctx, n.Name); err != nil {
		return err
	}
	s.mu.Lock()
	s.nodes[n.Name] = true
	s.mu.Unlock()
	return nil
}

// Stop makes the node fall silent: no more Lease renewals, pod starts or
// deletions, as when a machine loses power or its network.
func (s *Simulator) Stop(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.nodes[node]; ok {
		s.nodes[node] = false
	}
}

// Resume brings a stopped node back: it renews its Lease at once and picks
// up its pods again.
func (s *Simulator) Resume(ctx context.Context, node string) error {
	s.mu.Lock()
	_, ok := s.nodes[node]
	if ok {
		s.nodes[node] = true
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("node %s is not simulated", node)
	}
	if err := s.renew(ctx, node); err != nil {
		return err
	}
	for _, obj := range s.podsOn(node) {
		s.enqueue(obj)
	}
	return nil
}

func (s *Simulator) live(node string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodes[node]
}

func (s *Simulator) liveNodes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n, live := range s.nodes {
		if live {
			out = append(out, n)
		}
	}
	return out
}

// Run renews Leases and handles pods until ctx is done.
func (s *Simulator) Run(ctx context.Context) error {
	f := informers.NewSharedInformerFactoryWithOptions(s.client, 0)
	inf := f.Core().V1().Pods().Informer()
	if err := inf.AddIndexers(cache.Indexers{"node": func(obj any) ([]string, error) {
		return []string{obj.(*v1.Pod).Spec.NodeName}, nil
	}}); err != nil {
		return fmt.Errorf("pod index: %w", err)
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    s.enqueue,
		UpdateFunc: func(_, obj any) { s.enqueue(obj) },
	}); err != nil {
		return fmt.Errorf("pod handler: %w", err)
	}
	s.pods = inf.GetIndexer()
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("node simulator: pod cache did not sync: %w", context.Cause(ctx))
	}
	go func() {
		<-ctx.Done()
		s.queue.ShutDown()
	}()
	go wait.UntilWithContext(ctx, func(ctx context.Context) {
		for _, n := range s.liveNodes() {
			if err := s.renew(ctx, n); err != nil && ctx.Err() == nil {
				s.log.Warn("renewing node lease", "node", n, "err", err)
			}
		}
	}, s.o.RenewInterval)
	for s.work(ctx) {
	}
	return nil
}

func (s *Simulator) podsOn(node string) []any {
	if s.pods == nil {
		return nil
	}
	objs, _ := s.pods.ByIndex("node", node)
	return objs
}

func (s *Simulator) enqueue(obj any) {
	p, ok := obj.(*v1.Pod)
	if !ok || p.Spec.NodeName == "" || !s.live(p.Spec.NodeName) {
		return
	}
	key, err := cache.MetaNamespaceKeyFunc(p)
	if err != nil {
		return
	}
	if p.DeletionTimestamp == nil && !podReady(p) && s.o.StartDelay > 0 {
		s.queue.AddAfter(key, s.o.StartDelay)
		return
	}
	s.queue.Add(key)
}

func (s *Simulator) work(ctx context.Context) bool {
	key, quit := s.queue.Get()
	if quit {
		return false
	}
	defer s.queue.Done(key)
	obj, ok, err := s.pods.GetByKey(key)
	if err != nil || !ok {
		return true
	}
	p := obj.(*v1.Pod)
	if !s.live(p.Spec.NodeName) {
		return true
	}
	if err := s.sync(ctx, p); err != nil && ctx.Err() == nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		s.log.Warn("simulated kubelet", "pod", key, "err", err)
		s.queue.AddAfter(key, time.Second)
	}
	return true
}

// sync does what the kubelet would: finish a deletion, or start the pod.
func (s *Simulator) sync(ctx context.Context, p *v1.Pod) error {
	if p.DeletionTimestamp != nil {
		return s.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &p.UID}})
	}
	if podReady(p) || p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
		return nil
	}
	now := metav1.Now()
	p = p.DeepCopy()
	p.Status.Phase = v1.PodRunning
	p.Status.StartTime = &now
	p.Status.PodIP = "10.0.0.1"
	for _, t := range []v1.PodConditionType{v1.PodScheduled, v1.PodInitialized, v1.ContainersReady, v1.PodReady} {
		setCondition(&p.Status, v1.PodCondition{Type: t, Status: v1.ConditionTrue, LastTransitionTime: now})
	}
	p.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, v1.ContainerStatus{
			Name: c.Name, Image: c.Image, Ready: true, Started: ptr.To(true),
			State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: now}},
		})
	}
	_, err := s.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	return err
}

func setCondition(st *v1.PodStatus, c v1.PodCondition) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == c.Type {
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}

func podReady(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// renew creates or renews the node's Lease, owned by the node as the
// kubelet's is.
func (s *Simulator) renew(ctx context.Context, node string) error {
	leases := s.client.CoordinationV1().Leases(LeaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		n, err := s.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("lease for node %s: %w", node, err)
		}
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: LeaseNamespace, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: node, UID: n.UID}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(node),
				LeaseDurationSeconds: ptr.To(int32(s.o.LeaseDuration / time.Second)), RenewTime: &now},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating lease for node %s: %w", node, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("lease for node %s: %w", node, err)
	}
	// Resume renews while the renewal loop may too: a conflict is the
	// other's renewal, and this one is made again on the Lease as it is.
	first := true
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			if l, err = leases.Get(ctx, node, metav1.GetOptions{}); err != nil {
				return err
			}
		}
		first = false
		l.Spec.RenewTime = &now
		_, err := leases.Update(ctx, l, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("renewing lease for node %s: %w", node, err)
	}
	return nil
}
