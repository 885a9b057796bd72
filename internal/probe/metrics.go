package probe

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
)

// Metrics are the prober's Prometheus metrics.
type Metrics struct {
	rtt    *prometheus.HistogramVec
	loss   *prometheus.GaugeVec
	errors *prometheus.CounterVec
	rounds prometheus.Counter
}

// NewMetrics registers the prober's metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		rtt: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ning_probe_rtt_seconds",
			Help:    "Round-trip time of each probe reply, per target.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 0.1 ms .. 3.3 s
		}, []string{"target_site", "target_node", "method"}),
		loss: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ning_probe_loss_ratio",
			Help: "Share of probes lost in the last round, 0..1, per target.",
		}, []string{"target_site", "target_node"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_probe_errors_total",
			Help: "Rounds in which a target could not be measured by its first method (fell back or failed), per target.",
		}, []string{"target_site", "target_node"}),
		rounds: prometheus.NewCounter(prometheus.CounterOpts{Name: "ning_probe_rounds_total", Help: "Probe rounds completed."}),
	}
	for _, c := range []prometheus.Collector{m.rtt, m.loss, m.errors, m.rounds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering probe metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) observe(r *ningv1.LatencyReport) {
	m.rounds.Inc()
	for _, t := range r.GetTargets() {
		method := methodName(t.GetMethod())
		for _, ms := range t.GetRttMs() {
			m.rtt.WithLabelValues(t.GetSite(), t.GetNode(), method).Observe(ms / 1000)
		}
		if t.GetSent() > 0 {
			m.loss.WithLabelValues(t.GetSite(), t.GetNode()).Set(1 - float64(t.GetReceived())/float64(t.GetSent()))
		}
		if t.GetError() != "" {
			m.errors.WithLabelValues(t.GetSite(), t.GetNode()).Inc()
		}
	}
}
