package discover

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Reasons for ning_discover_errors_total{reason}.
const (
	ReasonPromUnreachable = "prometheus_unreachable"
	ReasonPromQuery       = "prometheus_query"
	ReasonEmptyResult     = "empty_result"
	ReasonBadResultType   = "bad_result_type"
	ReasonMissingNode     = "missing_node"
	ReasonBadRate         = "bad_rate"
	ReasonUnknownNode     = "unknown_node"
	ReasonNoData          = "no_data"
	ReasonOTLPWrongType   = "otlp_wrong_type"
	ReasonOTLPBadPoint    = "otlp_bad_point"
	ReasonOTLPUndecodable = "otlp_undecodable"
	ReasonKubernetes      = "kubernetes"
	ReasonJob             = "job"
	ReasonPublish         = "publish"
)

// DataError is bad or missing input: it is logged, counted under Reason and
// leaves the previous decision in place.
type DataError struct {
	Reason string
	Detail string
	Err    error
	// Source, when known, is who sent the data (an OTLP peer's address).
	Source string
}

func (e *DataError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Reason, e.Detail, e.Err)
	}
	return e.Reason + ": " + e.Detail
}

func (e *DataError) Unwrap() error { return e.Err }

// Sample is the per-node request rates one source measured at one time.
type Sample struct {
	// Source names what measured it: "prometheus" or "otlp".
	Source string
	At     time.Time
	// Window is the span the rates are averaged over.
	Window time.Duration
	// Rates maps a node name to its requests per second.
	Rates map[string]float64
	// WarmingUp is true while some rate does not yet cover a full window
	// (Prometheus) or rests on fewer than two points (OTLP).
	WarmingUp bool
	// Warming names the nodes still warming up.
	Warming []string
}

// Decision is the per-site request rate and the busiest site.
type Decision struct {
	Source string
	At     time.Time
	Window time.Duration
	// Sites maps every gateway site, and every site with reported traffic,
	// to its requests per second.
	Sites map[string]float64
	// Busiest is the site with the highest rate (ties: first by name), or
	// empty when no site has any traffic.
	Busiest   string
	WarmingUp bool
}

// Decide sums per-node rates per site. A NaN, infinite or negative rate
// rejects the whole sample. A node the cluster does not know is dropped and
// returned in dropped (a node removed since Prometheus last scraped it);
// when nothing known is left the sample is rejected.
func Decide(s Sample, c *Cluster) (d Decision, dropped []*DataError, err error) {
	if len(s.Rates) == 0 {
		return Decision{}, nil, &DataError{Reason: ReasonEmptyResult, Detail: fmt.Sprintf("%s returned no per-node rates", s.Source)}
	}
	nodes := make([]string, 0, len(s.Rates))
	for n := range s.Rates {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		if v := s.Rates[n]; math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return Decision{}, nil, &DataError{Reason: ReasonBadRate,
				Detail: fmt.Sprintf("%s: node %q has request rate %v (want a finite number >= 0); sample ignored", s.Source, n, v)}
		}
	}
	d = Decision{Source: s.Source, At: s.At, Window: s.Window, Sites: map[string]float64{}, WarmingUp: s.WarmingUp}
	for _, site := range c.GatewaySites {
		d.Sites[site] = 0
	}
	known := 0
	for _, n := range nodes {
		site, ok := c.SiteOfNode(n)
		if !ok {
			dropped = append(dropped, &DataError{Reason: ReasonUnknownNode,
				Detail: fmt.Sprintf("%s: node %q (%.3g req/s) is not a node of this cluster, so it belongs to no known site; its traffic is ignored", s.Source, n, s.Rates[n])})
			continue
		}
		known++
		d.Sites[site] += s.Rates[n]
	}
	if known == 0 {
		return Decision{}, nil, &DataError{Reason: ReasonUnknownNode,
			Detail: fmt.Sprintf("%s: none of the %d reporting nodes (%s) is a node of this cluster", s.Source, len(nodes), strings.Join(nodes, ", "))}
	}
	best := 0.0
	for _, site := range sortedKeys(d.Sites) {
		if v := d.Sites[site]; v > best {
			best, d.Busiest = v, site
		}
	}
	return d, dropped, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
