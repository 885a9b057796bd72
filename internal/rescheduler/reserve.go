package rescheduler

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/policy"
)

// annotationPlaceholderSize records the requests a placeholder was made
// with, so that a placeholder whose size no longer fits is made again.
const annotationPlaceholderSize = "ning.io/placeholder-size"

// ReserveMetrics are the failover reserve's metrics.
type ReserveMetrics struct {
	// Placeholders is how many placeholder pods exist, by state (running,
	// pending).
	Placeholders *prometheus.GaugeVec
	// Units is how many reserve units the workloads ask for in all.
	Units prometheus.Gauge
	// Actions counts placeholders created and deleted (action created,
	// deleted, error).
	Actions *prometheus.CounterVec
	// BadAnnotations counts malformed ning.io/failover-reserve values.
	BadAnnotations prometheus.Counter
}

func newReserveMetrics() *ReserveMetrics {
	return &ReserveMetrics{
		Placeholders: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ning_rescheduler_placeholders",
			Help: "Failover placeholder pods, by state (running, pending).",
		}, []string{"state"}),
		Units: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ning_rescheduler_reserve_units",
			Help: "Failover reserve units the workloads ask for (ning.io/failover-reserve), before sharing.",
		}),
		Actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_rescheduler_placeholder_actions_total",
			Help: "Failover placeholder pods created and deleted, by action (created, deleted, error).",
		}, []string{"action"}),
		BadAnnotations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ning_rescheduler_bad_failover_reserve_total",
			Help: "Workload pods whose ning.io/failover-reserve annotation does not parse; no reserve is kept for them.",
		}),
	}
}

func (m *ReserveMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Placeholders, m.Units, m.Actions, m.BadAnnotations}
}

// reserver keeps the failover placeholders (seed 002): for each workload
// with ning.io/failover-reserve, placeholders on the sites the planner
// would use if its busiest site failed (policy.FailoverSites), shared where
// failure sets are disjoint (policy.PackReserve), sized like its largest
// pod. A placeholder preempted by a replacement (PlaceholderPreemption) is
// made again on the next pass; one no longer wanted is deleted.
type reserver struct {
	cfg    Config
	client kubernetes.Interface
	store  Store
	m      *ReserveMetrics
	log    *slog.Logger
	bad    map[string]bool // pods whose bad annotation was counted
}

// pass makes the placeholders match the workloads' reserve.
func (rs *reserver) pass(ctx context.Context, nodes []*v1.Node, pods []*v1.Pod) {
	want := rs.desired(ctx, nodes, pods)
	have := map[string]*v1.Pod{}
	running, pending := 0, 0
	for _, p := range pods {
		if p.Namespace != rs.cfg.PlaceholderNamespace || !policy.IsPlaceholder(p) || p.DeletionTimestamp != nil {
			continue
		}
		have[p.Name] = p
		if p.Spec.NodeName != "" {
			running++
		} else {
			pending++
		}
	}
	rs.m.Placeholders.WithLabelValues("running").Set(float64(running))
	rs.m.Placeholders.WithLabelValues("pending").Set(float64(pending))
	for name, p := range have {
		if w, ok := want[name]; ok && p.Annotations[annotationPlaceholderSize] == w.Annotations[annotationPlaceholderSize] {
			continue
		}
		rs.act(ctx, "deleted", name, rs.client.CoreV1().Pods(p.Namespace).Delete(ctx, name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &p.UID}}))
	}
	for name, w := range want {
		if p, ok := have[name]; ok && p.Annotations[annotationPlaceholderSize] == w.Annotations[annotationPlaceholderSize] {
			continue
		}
		_, err := rs.client.CoreV1().Pods(w.Namespace).Create(ctx, w, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) { // the old one is still terminating
			continue
		}
		rs.act(ctx, "created", name, err)
	}
}

func (rs *reserver) act(ctx context.Context, action, name string, err error) {
	if err != nil && !apierrors.IsNotFound(err) {
		rs.m.Actions.WithLabelValues("error").Inc()
		rs.log.WarnContext(ctx, "failover placeholder", "action", action, "pod", name, "err", err)
		return
	}
	rs.m.Actions.WithLabelValues(action).Inc()
	rs.log.DebugContext(ctx, "failover placeholder", "action", action, "pod", name)
}

// desired is the placeholder pods the workloads' reserve needs, by name.
func (rs *reserver) desired(ctx context.Context, nodes []*v1.Node, pods []*v1.Pod) map[string]*v1.Pod {
	v := newView(nodes, pods, rs.store, rs.cfg.SiteLabel)
	var demands []policy.Demand
	units := 0
	for _, w := range workloads(pods, rs.cfg.SchedulerName) {
		running := w.running()
		if len(running) == 0 {
			continue
		}
		n, err := policy.FailoverReserve(running[0].Annotations)
		if err != nil {
			if !rs.bad[string(running[0].UID)] {
				rs.bad[string(running[0].UID)] = true
				rs.m.BadAnnotations.Inc()
				rs.log.WarnContext(ctx, "workload has a malformed failover reserve; keeping none", "workload", w.String(), "err", err)
			}
			continue
		}
		if n == 0 {
			continue
		}
		fo, err := rs.failover(ctx, w, running, v, n)
		if err != nil {
			rs.log.WarnContext(ctx, "failover reserve", "workload", w.String(), "err", err)
			continue
		}
		size := policy.LargestRequests(w.pods)
		for site, k := range fo.Units {
			for range k {
				demands = append(demands, policy.Demand{Workload: w.String(), Site: site, Size: size, Failures: []string{fo.Failed}})
				units++
			}
		}
	}
	rs.m.Units.Set(float64(units))
	out := map[string]*v1.Pod{}
	perSite := map[string]int{}
	for _, ph := range policy.PackReserve(demands) {
		k := perSite[ph.Site]
		perSite[ph.Site]++
		p := rs.placeholderPod(ph, k)
		out[p.Name] = p
	}
	return out
}

// failover is where a workload's n reserve units go, under the same delay
// verdicts and site rules the mover predicts the scheduler by.
func (rs *reserver) failover(ctx context.Context, w *workload, running []*v1.Pod, v *view, n int) (policy.Failover, error) {
	sample := running[0]
	cs, err := placement.ParseConstraints(sample.Labels)
	if err != nil {
		return policy.Failover{}, err
	}
	resolved, err := policy.Resolve(cs, sample.Namespace, v)
	if err != nil {
		return policy.Failover{}, err
	}
	j := policy.JudgeSites(resolved, v.sites, rs.store, policy.UnknownRTT(rs.cfg.UnknownRTT))
	hasNode, hasEdge := policy.SiteNodes(v.siteNodes, sample, rs.cfg.CloudFallback)
	usable := policy.UsableSites(j, v.sites, hasNode, hasEdge)
	current := make(placement.Placement, len(v.sites))
	for _, p := range running {
		if site, ok := v.nodeSite[p.Spec.NodeName]; ok && !v.down[p.Spec.NodeName] {
			current[v.index[site]]++
		}
	}
	prob := policy.Problem(v.sites, v.rtt, v.traffic, rs.cfg.PerReplicaRPS)
	limits, err := policy.LimitsOf(sample, v.capacity)
	if err != nil {
		return policy.Failover{}, fmt.Errorf("workload %s: %w", w, err)
	}
	limits.Apply(prob)
	fo, err := policy.FailoverSites(ctx, prob, current, usable, n)
	if err != nil {
		return fo, fmt.Errorf("workload %s: %w", w, err)
	}
	return fo, nil
}

// placeholderPod is the k-th placeholder pod at ph's site.
func (rs *reserver) placeholderPod(ph policy.Placeholder, k int) *v1.Pod {
	keys := make([]string, 0, len(ph.Size))
	for name := range ph.Size {
		keys = append(keys, string(name))
	}
	sort.Strings(keys)
	var size []string
	for _, name := range keys {
		q := ph.Size[v1.ResourceName(name)]
		size = append(size, name+"="+q.String())
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("ning-placeholder-%s-%d", dnsPart(ph.Site), k),
			Namespace:   rs.cfg.PlaceholderNamespace,
			Labels:      map[string]string{policy.LabelPlaceholder: "true", "app.kubernetes.io/managed-by": "ning-rescheduler"},
			Annotations: map[string]string{annotationPlaceholderSize: strings.Join(size, ",")},
		},
		Spec: v1.PodSpec{
			SchedulerName:                 rs.cfg.SchedulerName,
			PriorityClassName:             rs.cfg.PlaceholderPriorityClass,
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			// Pod Security "restricted": the placeholders may share a
			// namespace that enforces it.
			SecurityContext: &v1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65535),
				SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}},
			Affinity: &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{
					{Key: rs.cfg.SiteLabel, Operator: v1.NodeSelectorOpIn, Values: []string{ph.Site}},
				}}},
			}}},
			Containers: []v1.Container{{
				Name: "placeholder", Image: rs.cfg.PlaceholderImage,
				Resources: v1.ResourceRequirements{Requests: ph.Size},
				SecurityContext: &v1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
					Capabilities: &v1.Capabilities{Drop: []v1.Capability{"ALL"}}},
			}},
		},
	}
}

// dnsPart makes a site name usable in a pod name.
func dnsPart(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > 40 {
		out = out[:40]
	}
	return out
}

// KeepReserve makes one pass of the failover reserve: the placeholders
// match what the workloads' ning.io/failover-reserve asks for.
func (r *Rescheduler) KeepReserve(ctx context.Context) {
	if r.reserver == nil || r.recovering(r.cfg.NodeDownAfter) {
		return
	}
	nodes, pods, err := r.cached()
	if err != nil {
		r.log.ErrorContext(ctx, "failover reserve", "err", err)
		return
	}
	r.reserver.pass(ctx, nodes, pods)
}
