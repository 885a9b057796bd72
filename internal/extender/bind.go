package extender

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
)

// DefaultAssumeFor is how long a pod the extender has bound counts as
// assumed while its pod informer has not yet seen it bound: the informer
// normally sees it within milliseconds; the bound only keeps a pod whose
// update never arrives from counting for ever.
const DefaultAssumeFor = 30 * time.Second

// Reasons of /bind's refusals, beside the shared ones (malformed_json,
// missing_pod, bad_node_name, too_large, in_flight, cancelled).
const (
	reasonMissingNode  = "missing_node"
	reasonBadPodName   = "bad_pod_name"
	reasonUnknownPod   = "unknown_pod"
	reasonUIDMismatch  = "uid_mismatch"
	reasonAlreadyBound = "already_bound"
	reasonBindFailed   = "bind_failed"
	reasonNoClient     = "no_client"
)

// maxPodName is the longest pod name or namespace: a DNS subdomain.
const maxPodName = 253

// assumedPod is a pod the extender bound, counted in the site index as
// assumed until the informer sees it bound or until expires.
type assumedPod struct {
	pod     *v1.Pod
	expires time.Time
}

// assumedPods holds the pods the extender bound, oldest first: with one
// AssumeFor for every pod and a clock that does not go back, insertion order
// is expiry order, so expiring is popping from the front.
type assumedPods struct {
	mu    sync.Mutex
	queue []assumedPod
}

func (a *assumedPods) push(p assumedPod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.queue = append(a.queue, p)
}

// due removes and returns the pods expired at now.
func (a *assumedPods) due(now time.Time) []*v1.Pod {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for n < len(a.queue) && !now.Before(a.queue[n].expires) {
		n++
	}
	if n == 0 {
		return nil
	}
	out := make([]*v1.Pod, n)
	for i := range n {
		out[i] = a.queue[i].pod
		a.queue[i] = assumedPod{}
	}
	a.queue = a.queue[n:]
	return out
}

// expireAssumed stops counting the pods bound more than AssumeFor ago that
// the informer has still not seen bound (those it has seen stay: Forget
// leaves them).
func (x *Extender) expireAssumed() {
	for _, p := range x.assumed.due(x.clock.Now()) {
		if x.index.Forget(p) {
			x.metrics.AssumeExpired.Inc()
		}
	}
}

// Bind binds the pod to the node through the Binding subresource, as
// kube-scheduler's DefaultBinder does, and counts it in the workload's
// replicas per site at once (assumed, as the TrafficLatency plugin's Reserve
// does), so that the next replica of a burst is ranked with this one in
// place instead of waiting for the pod informer. A malformed request is a
// *RequestError with code 400; a well-formed one that cannot be bound (no
// such pod, already bound, refused by the apiserver) one with code 200, so
// that kube-scheduler, which reads no body of any other code, reports its
// message.
func (x *Extender) Bind(ctx context.Context, a *extenderv1.ExtenderBindingArgs) error {
	switch {
	case a.PodName == "" || a.PodNamespace == "":
		return badRequest("missing_pod", "the request names no pod: PodName and PodNamespace are required")
	case a.PodUID == "":
		return badRequest("missing_pod", "the request for pod %s/%s has no PodUID", a.PodNamespace, a.PodName)
	case len(a.PodName) > maxPodName || len(a.PodNamespace) > maxPodName:
		return badRequest(reasonBadPodName, "the pod's name or namespace is over %d bytes", maxPodName)
	case a.Node == "":
		return badRequest(reasonMissingNode, "the request for pod %s/%s names no Node", a.PodNamespace, a.PodName)
	case len(a.Node) > maxNodeName:
		return badRequest("bad_node_name", "the node name is %d bytes (at most %d)", len(a.Node), maxNodeName)
	}
	x.expireAssumed()
	if x.client == nil {
		return &RequestError{Reason: reasonNoClient, Code: http.StatusOK, Msg: "this extender has no Kubernetes client to bind with"}
	}
	pod, err := x.pendingPod(ctx, a)
	if err != nil {
		return err
	}
	// Counted before the Binding is sent, as the scheduler assumes before
	// it binds: the next replica's /prioritize may arrive while this call
	// is still on its way to the apiserver.
	x.index.Assume(pod, a.Node)
	err = x.client.CoreV1().Pods(a.PodNamespace).Bind(ctx, &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.PodNamespace, Name: a.PodName, UID: a.PodUID},
		Target:     v1.ObjectReference{Kind: "Node", Name: a.Node},
	}, metav1.CreateOptions{})
	if err != nil {
		x.index.Forget(pod)
		if ctx.Err() != nil {
			return fmt.Errorf("binding pod %s/%s to node %s: %w", a.PodNamespace, a.PodName, a.Node, context.Cause(ctx))
		}
		return &RequestError{Reason: reasonBindFailed, Code: http.StatusOK,
			Msg: fmt.Sprintf("binding pod %s/%s to node %s: %v", a.PodNamespace, a.PodName, a.Node, err)}
	}
	x.assumed.push(assumedPod{pod: pod, expires: x.clock.Now().Add(x.cfg.AssumeFor)})
	x.metrics.Bound.Inc()
	return nil
}

// pendingPod returns the pod the request names, from the informer cache or,
// for a pod created a moment ago, the apiserver; with the request's UID and
// not bound yet.
func (x *Extender) pendingPod(ctx context.Context, a *extenderv1.ExtenderBindingArgs) (*v1.Pod, error) {
	pod, err := x.pods.Pods(a.PodNamespace).Get(a.PodName)
	if err != nil || pod.UID != a.PodUID {
		pod, err = x.client.CoreV1().Pods(a.PodNamespace).Get(ctx, a.PodName, metav1.GetOptions{})
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, &RequestError{Reason: reasonUnknownPod, Code: http.StatusOK,
			Msg: fmt.Sprintf("pod %s/%s does not exist", a.PodNamespace, a.PodName)}
	case err != nil && ctx.Err() != nil:
		return nil, fmt.Errorf("looking up pod %s/%s: %w", a.PodNamespace, a.PodName, context.Cause(ctx))
	case err != nil:
		return nil, &RequestError{Reason: reasonBindFailed, Code: http.StatusOK,
			Msg: fmt.Sprintf("looking up pod %s/%s: %v", a.PodNamespace, a.PodName, err)}
	case pod.UID != a.PodUID:
		return nil, &RequestError{Reason: reasonUIDMismatch, Code: http.StatusOK,
			Msg: fmt.Sprintf("pod %s/%s has UID %s, not the request's %s (deleted and created again)", a.PodNamespace, a.PodName, pod.UID, a.PodUID)}
	case pod.Spec.NodeName != "":
		return nil, &RequestError{Reason: reasonAlreadyBound, Code: http.StatusOK,
			Msg: fmt.Sprintf("pod %s/%s is already bound to node %s", a.PodNamespace, a.PodName, pod.Spec.NodeName)}
	}
	// Only what the index reads: the informer's pods are shared.
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: a.PodUID,
		OwnerReferences: pod.OwnerReferences}}, nil
}
