package discover

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/logging"
)

// Metrics are discovery's Prometheus metrics.
type Metrics struct {
	Errors      *prometheus.CounterVec
	SiteRate    *prometheus.GaugeVec
	Busiest     *prometheus.GaugeVec
	WarmingUp   prometheus.Gauge
	Decisions   prometheus.Counter
	LastSuccess prometheus.Gauge
	JobsCreated prometheus.Counter
	every       *logging.Throttle
}

// NewMetrics registers discovery's metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		every: logging.NewThrottle(LogEvery, clock.RealClock{}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ning_discover_errors_total",
			Help: "Bad or missing input, by reason; the previous decision was kept."}, []string{"reason"}),
		SiteRate: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ning_discover_site_requests_per_second",
			Help: "Request rate entering at each site, as last decided."}, []string{"site"}),
		Busiest: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ning_discover_busiest_site",
			Help: "1 for the busiest site of the last decision."}, []string{"site"}),
		WarmingUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ning_discover_warming_up",
			Help: "1 while the rate window is not yet full, so no decision is taken."}),
		Decisions: prometheus.NewCounter(prometheus.CounterOpts{Name: "ning_discover_decisions_total",
			Help: "Decisions taken from valid data."}),
		LastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ning_discover_last_decision_timestamp_seconds",
			Help: "Unix time of the last decision."}),
		JobsCreated: prometheus.NewCounter(prometheus.CounterOpts{Name: "ning_discover_probe_jobs_created_total",
			Help: "Probe Jobs created."}),
	}
	for _, c := range []prometheus.Collector{m.Errors, m.SiteRate, m.Busiest, m.WarmingUp, m.Decisions, m.LastSuccess, m.JobsCreated} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering discovery metrics: %w", err)
		}
	}
	return m, nil
}

// Reporter returns a function that counts a DataError and logs it, once per
// source and reason per LogEvery.
func (m *Metrics) Reporter(log *slog.Logger) func(*DataError) {
	return func(e *DataError) {
		m.Errors.WithLabelValues(e.Reason).Inc()
		if ok, _ := m.every.Allow(e.Source + "\x00" + e.Reason); ok {
			log.Warn("discovery input rejected (logged once per source and reason per interval; every one is counted)",
				"reason", e.Reason, "source", e.Source, "detail", e.Detail, "err", e.Err, "interval", LogEvery)
		}
	}
}

// LogEvery is how often one source's rejections of one reason are logged.
const LogEvery = time.Minute

// report counts err under its reason (a DataError) or under fallback.
func (m *Metrics) report(log *slog.Logger, err error, fallback string) {
	var de *DataError
	if errors.As(err, &de) {
		m.Reporter(log)(de)
		return
	}
	m.Reporter(log)(&DataError{Reason: fallback, Detail: "discovery step failed", Err: err})
}
