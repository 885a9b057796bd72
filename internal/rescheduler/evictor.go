package rescheduler

import (
	"context"
	"log/slog"

	"golang.org/x/time/rate"
	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
)

// Limits bound the evictions of one rescheduling cycle; 0 is no limit.
type Limits struct {
	Total, PerNamespace, PerNode, PerWorkload int
}

// evictor makes every eviction and deletion, as the descheduler's does: the
// policy/v1 Eviction API (so PodDisruptionBudgets hold) within per-node,
// per-namespace, per-workload and total limits and a global rate, dry-run,
// the metrics and the Event on the pod, all here. It holds no lock: its
// callers decide under theirs and call it outside.
type evictor struct {
	client kubernetes.Interface
	dryRun bool
	limits Limits
	// rate, when not nil, limits evictions over all cycles and workloads,
	// on clock.
	rate     *rate.Limiter
	clock    clock.PassiveClock
	m        *Metrics
	log      *slog.Logger
	recorder record.EventRecorder
}

// evictionRate is the token bucket of cfg.EvictionQPS (nil: no limit). An
// eviction takes its token by reservation, and gives it back when it does
// not happen (the pod gone, a PodDisruptionBudget refusing, an error), so
// that blocked workloads do not use up the rate of the others.
func evictionRate(cfg Config) *rate.Limiter {
	if cfg.EvictionQPS <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(cfg.EvictionQPS), cfg.EvictionBurst)
}

// budget counts one cycle's evictions against the limits.
type budget struct {
	limits      Limits
	total       int
	perNS       map[string]int
	perNode     map[string]int
	perWorkload map[types.UID]int
}

func (e *evictor) budget() *budget {
	return &budget{limits: e.limits, perNS: map[string]int{}, perNode: map[string]int{}, perWorkload: map[types.UID]int{}}
}

func under(n, limit int) bool { return limit <= 0 || n < limit }

func (b *budget) allows(pod *v1.Pod, w types.UID) bool {
	return under(b.total, b.limits.Total) && under(b.perNS[pod.Namespace], b.limits.PerNamespace) &&
		under(b.perNode[pod.Spec.NodeName], b.limits.PerNode) && under(b.perWorkload[w], b.limits.PerWorkload)
}

func (b *budget) spend(pod *v1.Pod, w types.UID) {
	b.total++
	b.perNS[pod.Namespace]++
	b.perNode[pod.Spec.NodeName]++
	b.perWorkload[w]++
}

// result is what became of one eviction or deletion.
type result string

const (
	resultEvicted result = "evicted"
	resultDeleted result = "deleted"
	resultDryRun  result = "dry_run"
	resultLimited result = "limited"
	// resultRateLimited: over --eviction-qps; the next cycle tries again.
	resultRateLimited result = "rate_limited"
	resultBlocked     result = "blocked_by_pdb"
	resultGone        result = "gone"
	resultError       result = "error"
)

// done reports whether the pod is (or, in dry-run, would be) gone.
func (r result) done() bool { return r == resultEvicted || r == resultDeleted || r == resultDryRun }

// request is one pod to evict or delete, and why.
type request struct {
	pod      *v1.Pod
	workload types.UID
	// reason is the Event reason, metric the reason label of
	// ning_rescheduler_evictions_total.
	reason, metric string
	msg            string
	// annotations, when set, go on the Event (the memory of a move).
	annotations map[string]string
}

func (r request) eviction(dryRun bool) Eviction {
	return Eviction{Pod: types.NamespacedName{Namespace: r.pod.Namespace, Name: r.pod.Name}, Node: r.pod.Spec.NodeName,
		Reason: r.reason, Message: r.msg, DryRun: dryRun}
}

// evict evicts the pod through the Eviction API if b and the rate allow,
// after checking it against the apiserver (not the cache), and spends b on
// success.
func (e *evictor) evict(ctx context.Context, b *budget, r request) (Eviction, result) {
	ev := r.eviction(e.dryRun)
	if !b.allows(r.pod, r.workload) {
		e.m.Decisions.WithLabelValues(string(resultLimited)).Inc()
		return ev, resultLimited
	}
	giveBack := func() {}
	if e.rate != nil {
		now := e.clock.Now()
		token := e.rate.ReserveN(now, 1)
		if !token.OK() || token.DelayFrom(now) > 0 {
			token.CancelAt(now)
			e.m.Decisions.WithLabelValues(string(resultRateLimited)).Inc()
			e.m.Evictions.WithLabelValues(r.metric, string(resultRateLimited)).Inc()
			e.log.DebugContext(ctx, "eviction rate limit reached; trying again next cycle", "pod", ev.Pod.String())
			return ev, resultRateLimited
		}
		giveBack = func() { token.CancelAt(e.clock.Now()) }
	}
	pod := r.pod
	live, err := e.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil || live.UID != pod.UID || live.DeletionTimestamp != nil || live.Spec.NodeName != pod.Spec.NodeName {
		giveBack()
		e.m.Evictions.WithLabelValues(r.metric, string(resultGone)).Inc()
		e.log.InfoContext(ctx, "pod changed since the cache saw it; not evicting", "pod", ev.Pod.String(), "err", err)
		return ev, resultGone
	}
	if e.dryRun {
		b.spend(pod, r.workload)
		e.m.Evictions.WithLabelValues(r.metric, string(resultDryRun)).Inc()
		e.log.InfoContext(ctx, "dry run: would evict", "pod", ev.Pod.String(), "node", ev.Node, "reason", r.reason, "why", r.msg)
		return ev, resultDryRun
	}
	err = e.client.PolicyV1().Evictions(pod.Namespace).Evict(ctx, &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}},
	})
	if err != nil {
		giveBack()
	}
	switch {
	case apierrors.IsTooManyRequests(err):
		e.m.Evictions.WithLabelValues(r.metric, string(resultBlocked)).Inc()
		e.log.InfoContext(ctx, "eviction refused (PodDisruptionBudget)", "pod", ev.Pod.String(), "err", err)
		return ev, resultBlocked
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		e.m.Evictions.WithLabelValues(r.metric, string(resultGone)).Inc()
		return ev, resultGone
	case err != nil:
		e.m.Evictions.WithLabelValues(r.metric, string(resultError)).Inc()
		e.log.ErrorContext(ctx, "evicting", "pod", ev.Pod.String(), "err", err)
		return ev, resultError
	}
	b.spend(pod, r.workload)
	e.m.Evictions.WithLabelValues(r.metric, string(resultEvicted)).Inc()
	e.recorder.AnnotatedEventf(pod, r.annotations, v1.EventTypeNormal, r.reason, "%s", r.msg)
	e.log.InfoContext(ctx, "evicted", "pod", ev.Pod.String(), "node", ev.Node, "reason", r.reason, "why", r.msg)
	return ev, resultEvicted
}

// delete deletes a pod of a down node (forced: no grace period), outside
// the limits: a down node's pods are replaced all at once. A graceful
// deletion needs the kubelet, which an unreachable node's never confirms.
func (e *evictor) delete(ctx context.Context, r request, force bool) (Eviction, result) {
	ev := r.eviction(e.dryRun)
	pod := r.pod
	if e.dryRun {
		e.m.Evictions.WithLabelValues(r.metric, string(resultDryRun)).Inc()
		e.log.InfoContext(ctx, "dry run: would delete", "pod", ev.Pod.String(), "node", ev.Node, "force", force, "why", r.msg)
		return ev, resultDryRun
	}
	opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}}
	if force {
		opts.GracePeriodSeconds = ptr.To[int64](0)
	}
	switch err := e.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, opts); {
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		e.m.Evictions.WithLabelValues(r.metric, string(resultGone)).Inc()
		return ev, resultGone
	case err != nil:
		e.m.Evictions.WithLabelValues(r.metric, string(resultError)).Inc()
		e.log.ErrorContext(ctx, "deleting pod on down node", "pod", ev.Pod.String(), "err", err)
		return ev, resultError
	}
	e.m.Evictions.WithLabelValues(r.metric, string(resultDeleted)).Inc()
	e.recorder.Eventf(pod, v1.EventTypeWarning, r.reason, "%s", r.msg)
	e.log.InfoContext(ctx, "deleted pod on down node", "pod", ev.Pod.String(), "node", ev.Node, "force", force)
	return ev, resultDeleted
}
