package discover

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// DefaultQuery is the seed's query: per-node request rate at the web entrypoint.
const DefaultQuery = `sum by (node) (rate(traefik_entrypoint_requests_total{entrypoint="web"}[1m]))`

// DefaultNodeLabel is the label of the query result that names the node.
const DefaultNodeLabel = "node"

// Prometheus pulls per-node rates with a PromQL instant query.
type Prometheus struct {
	api       promv1.API
	query     string
	nodeLabel model.LabelName
	window    time.Duration
	timeout   time.Duration
}

// PrometheusOptions configures a Prometheus source.
type PrometheusOptions struct {
	// URL of the Prometheus server, e.g. http://prometheus:9090.
	URL string
	// Query returns one sample per node; empty means DefaultQuery.
	Query string
	// NodeLabel names the node in each result; empty means DefaultNodeLabel.
	NodeLabel string
	// Window is the rate window; zero means the longest range selector in
	// Query (the 1m of [1m]).
	Window time.Duration
	// Timeout bounds one query; zero means 10 s.
	Timeout time.Duration
}

// NewPrometheus builds the source; it does not contact the server.
func NewPrometheus(o PrometheusOptions) (*Prometheus, error) {
	if o.Query == "" {
		o.Query = DefaultQuery
	}
	if o.NodeLabel == "" {
		o.NodeLabel = DefaultNodeLabel
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Window <= 0 {
		w, err := QueryWindow(o.Query)
		if err != nil {
			return nil, err
		}
		o.Window = w
	}
	c, err := api.NewClient(api.Config{Address: o.URL})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %q: %w", o.URL, err)
	}
	return &Prometheus{api: promv1.NewAPI(c), query: o.Query, nodeLabel: model.LabelName(o.NodeLabel), window: o.Window, timeout: o.Timeout}, nil
}

var rangeRE = regexp.MustCompile(`\[\s*([0-9]+(?:ms|[smhdwy])(?:[0-9]+(?:ms|[smhdwy]))*)\s*(?::[^\]]*)?\]`)

// QueryWindow returns the longest range selector of a PromQL query ([1m] is
// one minute), which is how long rate() needs before its figures are whole.
func QueryWindow(q string) (time.Duration, error) {
	var longest time.Duration
	for _, m := range rangeRE.FindAllStringSubmatch(q, -1) {
		d, err := model.ParseDuration(m[1])
		if err != nil {
			return 0, fmt.Errorf("query range [%s]: %w", m[1], err)
		}
		longest = max(longest, time.Duration(d))
	}
	if longest == 0 {
		return 0, fmt.Errorf("query %q has no range selector such as [1m]: give the rate window explicitly", q)
	}
	return longest, nil
}

// Name implements Source.
func (p *Prometheus) Name() string { return "prometheus" }

// Window is the rate window.
func (p *Prometheus) Window() time.Duration { return p.window }

// Sample runs the query at now, and again one window earlier: a node that
// has a rate now but had none a window ago started within the window, so
// rate() extrapolates over part of it and the figure is still warming up.
func (p *Prometheus) Sample(ctx context.Context, now time.Time) (Sample, error) {
	cur, err := p.instant(ctx, now)
	if err != nil {
		return Sample{}, err
	}
	if len(cur) == 0 {
		return Sample{}, &DataError{Reason: ReasonEmptyResult,
			Detail: fmt.Sprintf("query %s returned no series: no gateway traffic metrics in Prometheus (yet), or the query matches nothing", p.query)}
	}
	s := Sample{Source: p.Name(), At: now, Window: p.window, Rates: cur}
	prev, err := p.instant(ctx, now.Add(-p.window))
	if err != nil {
		return Sample{}, err
	}
	for _, n := range sortedKeys(cur) {
		if _, ok := prev[n]; !ok {
			s.Warming = append(s.Warming, n)
		}
	}
	s.WarmingUp = len(s.Warming) > 0
	return s, nil
}

func (p *Prometheus) instant(ctx context.Context, at time.Time) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	v, _, _, err := p.api.Query(ctx, p.query, at)
	if err != nil {
		var pe *promv1.Error
		if errors.As(err, &pe) && pe.Type != promv1.ErrClient {
			return nil, &DataError{Reason: ReasonPromQuery, Detail: fmt.Sprintf("query %s", p.query), Err: err}
		}
		return nil, &DataError{Reason: ReasonPromUnreachable, Detail: "querying Prometheus", Err: err}
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, &DataError{Reason: ReasonBadResultType,
			Detail: fmt.Sprintf("query %s returned a %s; want an instant vector with one sample per node (label %q)", p.query, v.Type(), p.nodeLabel)}
	}
	out := make(map[string]float64, len(vec))
	for _, smp := range vec {
		node := string(smp.Metric[p.nodeLabel])
		if node == "" {
			return nil, &DataError{Reason: ReasonMissingNode,
				Detail: fmt.Sprintf("query %s: series %s has no %q label; use sum by (%s) (...)", p.query, smp.Metric, p.nodeLabel, p.nodeLabel)}
		}
		if _, dup := out[node]; dup {
			return nil, &DataError{Reason: ReasonBadResultType,
				Detail: fmt.Sprintf("query %s returned node %q twice; aggregate with sum by (%s) (...)", p.query, node, p.nodeLabel)}
		}
		out[node] = float64(smp.Value)
	}
	return out, nil
}
