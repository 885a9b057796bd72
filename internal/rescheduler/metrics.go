package rescheduler

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the rescheduler's Prometheus metrics.
type Metrics struct {
	// Evictions counts evictions and deletions by reason (traffic,
	// delay_violation, node_down) and result (evicted, deleted, dry_run,
	// blocked_by_pdb, rate_limited, gone, error).
	Evictions *prometheus.CounterVec
	// Decisions counts per-workload outcomes of a cycle (moved, below_threshold,
	// holding, settling, cooldown, bounce_backoff, no_traffic,
	// no_improving_move, target_unfit, target_check_failed, plan_failed,
	// limited, rate_limited, node_down: a pod on a node held down, ...) and
	// of node checks (stale_view, mass_node_down, bad_autonomy_annotation).
	Decisions *prometheus.CounterVec
	// WeightedRTT is each workload's traffic-weighted mean RTT in ms, as it
	// runs (actual) and as planned; no series while that placement's
	// traffic crosses a link of unknown RTT.
	WeightedRTT *prometheus.GaugeVec
	// CycleDuration times a rescheduling cycle, NodeCheckDuration a check of
	// the nodes.
	CycleDuration, NodeCheckDuration prometheus.Histogram
	// NodesDown is how many nodes the rescheduler holds down now.
	NodesDown prometheus.Gauge
	// NodesCutOff is how many of them are cut off from the control plane
	// only (their pods kept); NodeVerdicts counts the silent nodes judged
	// dead or cut_off (each change of verdict once).
	NodesCutOff  prometheus.Gauge
	NodeVerdicts *prometheus.CounterVec
	// PartitionSurge counts the replicas added to Deployments for pods on
	// cut-off nodes, and taken back (action added, released).
	PartitionSurge *prometheus.CounterVec
	// Leader is 1 while this instance holds the lease.
	Leader prometheus.Gauge
	// BadLabels counts pods whose delay_<from> or ning.io/max-per-site labels
	// do not parse.
	BadLabels prometheus.Counter
	// NotRescued counts the ning pods on down nodes that the rescheduler
	// leaves there, by reason (bare_pod, statefulset): each pod once per
	// leader term.
	NotRescued *prometheus.CounterVec
	// MoveBounces counts evictions whose replacement the scheduler put back
	// on the site the pod was evicted from, by reason (traffic,
	// delay_violation).
	MoveBounces *prometheus.CounterVec
	// Reserve are the failover reserve's metrics.
	Reserve *ReserveMetrics
}

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_rescheduler_evictions_total",
			Help: "Pods the rescheduler evicted or deleted, by reason and result.",
		}, []string{"reason", "result"}),
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_rescheduler_decisions_total",
			Help: "Per-workload outcomes of rescheduling cycles.",
		}, []string{"decision"}),
		WeightedRTT: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ning_rescheduler_weighted_rtt_milliseconds",
			Help: "Traffic-weighted mean RTT of each workload, as placed (actual) and as planned.",
		}, []string{"namespace", "workload", "placement"}),
		CycleDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ning_rescheduler_cycle_duration_seconds",
			Help:    "Time one rescheduling cycle takes.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		NodeCheckDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ning_rescheduler_node_check_duration_seconds",
			Help:    "Time one check of the nodes (for down nodes and nodes back) takes.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		NodesDown: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ning_rescheduler_nodes_down",
			Help: "Nodes the rescheduler considers down (tainted ning.io/node-down).",
		}),
		NodesCutOff: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ning_rescheduler_nodes_cut_off",
			Help: "Down nodes that only the control plane has lost (the data plane still hears their site, or an autonomy bound holds): tainted, their pods kept.",
		}),
		NodeVerdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_rescheduler_node_verdicts_total",
			Help: "Silent nodes judged dead (pods replaced) or cut_off (pods kept, capacity added elsewhere), each change of verdict once.",
		}, []string{"fate"}),
		PartitionSurge: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_rescheduler_partition_surge_replicas_total",
			Help: "Replicas added to Deployments for the pods of cut-off nodes (added), and taken back when the node is back or dead (released).",
		}, []string{"action"}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ning_rescheduler_leader",
			Help: "1 while this instance is the leader and acts, 0 otherwise.",
		}),
		BadLabels: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ning_rescheduler_bad_delay_labels_total",
			Help: "Pods whose delay_<from> (or ning.io/max-per-site) labels do not parse; the rescheduler leaves their workloads alone.",
		}),
		NotRescued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_rescheduler_pods_not_rescued_total",
			Help: "Pods on down nodes that the rescheduler leaves there, by reason: bare_pod (nothing would replace it), statefulset (without --allow-statefulset-force).",
		}, []string{"reason"}),
		MoveBounces: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_rescheduler_move_bounces_total",
			Help: "Evictions whose replacement the scheduler put back on the site the pod was evicted from (its choice disagrees with the rescheduler's prediction); each backs the workload off longer.",
		}, []string{"reason"}),
		Reserve: newReserveMetrics(),
	}
	for _, c := range append([]prometheus.Collector{m.Evictions, m.Decisions, m.WeightedRTT, m.CycleDuration, m.NodeCheckDuration, m.NodesDown, m.NodesCutOff, m.NodeVerdicts, m.PartitionSurge, m.Leader, m.BadLabels, m.NotRescued, m.MoveBounces}, m.Reserve.collectors()...) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering rescheduler metrics: %w", err)
		}
	}
	return m, nil
}
