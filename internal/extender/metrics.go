package extender

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the extender's Prometheus metrics.
type Metrics struct {
	// Requests counts requests by verb (filter, /prioritize, healthz, metrics,
	// other) and HTTP status code.
	Requests *prometheus.CounterVec
	// Duration is the time to answer a request, by verb and code.
	Duration *prometheus.HistogramVec
	// Rejected counts requests answered 4xx, and /bind requests answered
	// with an ExtenderBindingResult error, by reason.
	Rejected *prometheus.CounterVec
	// Bounded counts requests answered within a limit, by reason:
	// label_too_long (a pod label over Limits.MaxLabelBytes rejects every
	// node with one short reason), unknown_site (nodes the informer has not
	// seen score without traffic), too_many_sites (the cluster has more
	// sites than the store's MaxSites: no traffic scores).
	Bounded *prometheus.CounterVec
	// Filtered counts nodes filtered out, by reason (delay, delay_from,
	// label, load, site_limit).
	Filtered *prometheus.CounterVec
	// MalformedLabels counts pods with a malformed delay label.
	MalformedLabels prometheus.Counter
	// MalformedLimits counts /filter requests that met a malformed per-site
	// limit label, as the scheduler's metric of that name.
	MalformedLimits *prometheus.CounterVec
	// FailOpen counts pods whose delay constraints failed open.
	FailOpen prometheus.Counter
	// MissingData counts requests scored without traffic or some node's load.
	MissingData *prometheus.CounterVec
	// Bound counts pods bound through /bind.
	Bound prometheus.Counter
	// AssumeExpired counts pods bound through /bind that stopped counting
	// as assumed after Config.AssumeFor without the informer seeing them
	// bound.
	AssumeExpired prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_extender_requests_total",
			Help: "Extender HTTP requests by verb and status code.",
		}, []string{"verb", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ning_extender_request_duration_seconds",
			Help:    "Time to answer an extender HTTP request, by verb and status code.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"verb", "code"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_extender_rejected_requests_total",
			Help: "Extender requests refused (4xx, or a /bind answered with an error), by reason.",
		}, []string{"reason"}),
		Bounded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_extender_bounded_requests_total",
			Help: "Extender requests answered within a limit, by reason: label_too_long, unknown_site, too_many_sites.",
		}, []string{"reason"}),
		Filtered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_extender_filtered_nodes_total",
			Help: "Nodes filtered out by /filter, by reason: delay (a constraint is broken), delay_from (its <from> names nothing yet), label (malformed delay or ning.io/max-per-site label), load, site_limit (the site holds its limit of the workload's replicas).",
		}, []string{"reason"}),
		MalformedLabels: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ning_extender_malformed_delay_labels_total",
			Help: "Filter requests for pods with a malformed delay_<from> label.",
		}),
		MalformedLimits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_extender_malformed_limit_labels_total",
			Help: "Filter requests that met a malformed per-site limit label: max_per_site (the pod's ning.io/max-per-site; every node rejected) or site_capacity (a node's ning.io/site-capacity; ignored).",
		}, []string{"label"}),
		FailOpen: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ning_extender_delay_fail_open_total",
			Help: "Filter requests in which delay constraints failed open because only unknown RTTs rejected every node.",
		}),
		MissingData: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_extender_missing_data_total",
			Help: "Requests to /prioritize scored without fresh data, by kind (traffic, load).",
		}, []string{"data"}),
		Bound: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ning_extender_bound_pods_total",
			Help: "Pods bound through /bind, each counted at once in its workload's replicas per site.",
		}),
		AssumeExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ning_extender_assumed_expired_total",
			Help: "Pods bound through /bind that stopped counting after the assume timeout without the pod informer seeing them bound.",
		}),
	}
	for _, c := range []prometheus.Collector{m.Requests, m.Duration, m.Rejected, m.Bounded, m.Filtered, m.MalformedLabels, m.MalformedLimits, m.FailOpen, m.MissingData, m.Bound, m.AssumeExpired} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering the extender's metrics: %w", err)
		}
	}
	return m, nil
}
