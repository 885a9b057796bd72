// Package schedmetrics holds the metrics of ning's scheduler plugins. They are
// registered in component-base's legacy registry, which is what kube-scheduler
// serves on /metrics, so they sit next to the scheduler's own metrics
// (including scheduler_plugin_execution_duration_seconds, which the framework
// already records for every ning plugin). That registry is process-wide, so
// registration happens once per process, as in every Kubernetes component.
package schedmetrics

import (
	"sync"
	"time"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"

	"github.com/ning-edge/ning/internal/topology"
)

const subsystem = "ning_scheduler"

// Metrics is the set of ning scheduler metrics.
type Metrics struct {
	// MissingData counts scheduling cycles that found data missing or stale
	// (labels plugin, data: rtt, traffic or load).
	MissingData *metrics.CounterVec
	// RejectedLabels counts pods with a malformed delay label.
	RejectedLabels *metrics.Counter
	// MalformedLimits counts malformed per-site limit labels (label:
	// max_per_site on a pod, which is then rejected; site_capacity on a
	// node, which is then ignored), per scheduling cycle.
	MalformedLimits *metrics.CounterVec
	// FailOpen counts pods whose delay constraints were relaxed because every
	// site would have failed for want of RTT data.
	FailOpen *metrics.Counter
	// Placements counts pods placed, by whether they went to the site the
	// TrafficLatency score ranked first.
	Placements *metrics.CounterVec
	// DataAge is the age of the store's newest data of each kind.
	DataAge *metrics.GaugeVec
}

var (
	once   sync.Once
	shared *Metrics
)

// Register returns the process's scheduler metrics, registering them on first use.
func Register() *Metrics {
	once.Do(func() {
		shared = &Metrics{
			MissingData: metrics.NewCounterVec(&metrics.CounterOpts{
				Subsystem: subsystem, Name: "missing_data_total",
				Help:           "Scheduling cycles in which a ning plugin found RTT, traffic or load data missing or stale and scored neutrally or failed open.",
				StabilityLevel: metrics.ALPHA,
			}, []string{"plugin", "data"}),
			RejectedLabels: metrics.NewCounter(&metrics.CounterOpts{
				Subsystem: subsystem, Name: "malformed_delay_labels_total",
				Help:           "Pods rejected because a delay_<from> label is malformed.",
				StabilityLevel: metrics.ALPHA,
			}),
			MalformedLimits: metrics.NewCounterVec(&metrics.CounterOpts{
				Subsystem: subsystem, Name: "malformed_limit_labels_total",
				Help:           "Scheduling cycles that met a malformed per-site limit label: max_per_site (the pod's ning.io/max-per-site; the pod is rejected) or site_capacity (a node's ning.io/site-capacity; ignored).",
				StabilityLevel: metrics.ALPHA,
			}, []string{"label"}),
			FailOpen: metrics.NewCounter(&metrics.CounterOpts{
				Subsystem: subsystem, Name: "delay_fail_open_total",
				Help:           "Pods whose delay constraints failed open because no site had the RTT data to pass them.",
				StabilityLevel: metrics.ALPHA,
			}),
			Placements: metrics.NewCounterVec(&metrics.CounterOpts{
				Subsystem: subsystem, Name: "placements_total",
				Help:           "Pods bound by the ning profile, by whether the chosen site was TrafficLatency's first choice.",
				StabilityLevel: metrics.ALPHA,
			}, []string{"first_choice"}),
			DataAge: metrics.NewGaugeVec(&metrics.GaugeOpts{
				Subsystem: subsystem, Name: "data_age_seconds",
				Help:           "Seconds since the latency store last received each kind of data (rtt, traffic, load); -1 when it never did.",
				StabilityLevel: metrics.ALPHA,
			}, []string{"data"}),
		}
		legacyregistry.MustRegister(shared.MissingData, shared.RejectedLabels, shared.MalformedLimits, shared.FailOpen, shared.Placements, shared.DataAge)
	})
	return shared
}

// UpdateAges sets the data age gauges from a store.
func (m *Metrics) UpdateAges(u topology.Updates, now time.Time) {
	for data, t := range map[string]time.Time{"rtt": u.RTT, "traffic": u.Traffic, "load": u.Load} {
		age := -1.0
		if !t.IsZero() {
			age = now.Sub(t).Seconds()
		}
		m.DataAge.WithLabelValues(data).Set(age)
	}
}
