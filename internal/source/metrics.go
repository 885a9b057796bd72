package source

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ning-edge/ning/internal/topology"
)

// Metrics are the counters every source shares, so that one registry shows
// one ning_reports_rejected_total{reason} whatever the source.
type Metrics struct {
	rejected *prometheus.CounterVec
	accepted *prometheus.CounterVec
	unmapped *prometheus.CounterVec
	// implausible counts RTTs the cross-check found implausible, by action.
	implausible *prometheus.CounterVec
}

// rejectReason is the reason label of a rejection: a *topology.RejectError's
// reason, else ReasonStore.
func rejectReason(err error) string {
	var re *topology.RejectError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ReasonStore
}

// NewMetrics registers the source counters on reg; when another source
// registered them first, it shares theirs.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_reports_rejected_total", Help: "Reports dropped before reaching the store, by reason."}, []string{"reason"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_reports_accepted_total", Help: "Reports written to the store, by kind."}, []string{"kind"}),
		unmapped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_source_unmapped_total", Help: "Entries of accepted reports skipped because their address or host name maps to no known site, by source."}, []string{"source"}),
		implausible: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ning_reports_implausible_total", Help: "Measured RTTs that other sites' measurements make implausible, by action (flagged: stored anyway; rejected: report refused)."}, []string{"action"}),
	}
	for _, c := range []**prometheus.CounterVec{&m.rejected, &m.accepted, &m.unmapped, &m.implausible} {
		if err := reg.Register(*c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("registering source metrics: %w", err)
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, fmt.Errorf("registering source metrics: %w", err)
			}
			*c = existing
		}
	}
	return m, nil
}
