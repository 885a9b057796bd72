package discover

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ning-edge/ning/internal/discover/promtest"
)

func TestQueryWindow(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want time.Duration
		err  bool
	}{
		{DefaultQuery, time.Minute, false},
		{`sum by (node) (rate(x[5s]))`, 5 * time.Second, false},
		{`sum by (node) (rate(x[1m30s])) + sum by (node) (increase(y[2m]))`, 2 * time.Minute, false},
		{`max_over_time(rate(x[10s])[1m:5s])`, time.Minute, false},
		{`sum by (node) (x)`, 0, true},
	} {
		got, err := QueryWindow(tc.q)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("QueryWindow(%q) = %v, %v; want %v, error %v", tc.q, got, err, tc.want, tc.err)
		}
	}
}

// testQuery is the seed's query with a 5 s window, so the test is quick.
const testQuery = `sum by (node) (rate(traefik_entrypoint_requests_total{entrypoint="web"}[5s]))`

// waitWarm samples until the figures cover a full window; it returns the
// warm sample and whether a warming-up sample was seen on the way.
func waitWarm(t *testing.T, p *Prometheus) (Sample, bool) {
	t.Helper()
	ctx := context.Background()
	sawWarming := false
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		s, err := p.Sample(ctx, time.Now())
		switch {
		case err != nil:
			var de *DataError
			if !errors.As(err, &de) || de.Reason != ReasonEmptyResult {
				t.Fatalf("sample: %v", err)
			}
		case s.WarmingUp:
			sawWarming = true
		default:
			return s, sawWarming
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatal("rates still warming up after 45s")
	return Sample{}, false
}

// TestPrometheusDecision runs a real Prometheus scraping per-node counters
// that grow at known rates; the per-site rates and busiest site match.
func TestPrometheusDecision(t *testing.T) {
	t.Parallel()
	gw := promtest.ServeGateway(t, []promtest.Flow{
		{Node: "edge-a1", Entrypoint: "web", RPS: 50}, {Node: "edge-a2", Entrypoint: "web", RPS: 30}, // site a: 80
		{Node: "edge-b1", Entrypoint: "web", RPS: 120},       // site b: 120, the busiest
		{Node: "edge-b1", Entrypoint: "websecure", RPS: 900}, // not the web entrypoint
		{Node: "edge-c1", Entrypoint: "web", RPS: 10},        // a node without a zone label: site edge-c1
	})
	prom := promtest.Start(t, gw)
	p, err := NewPrometheus(PrometheusOptions{URL: prom.URL, Query: testQuery})
	if err != nil {
		t.Fatal(err)
	}
	if p.Window() != 5*time.Second {
		t.Fatalf("window %v, want 5s from the query", p.Window())
	}
	s, sawWarming := waitWarm(t, p)
	if !sawWarming {
		t.Error("never reported warming up during the first window")
	}
	c := BuildCluster(
		[]corev1.Node{mkNode("edge-a1", "a", "10.0.0.1"), mkNode("edge-a2", "a", "10.0.0.2"), mkNode("edge-b1", "b", "10.0.1.1"), mkNode("edge-c1", "", "10.0.2.1")},
		[]corev1.Pod{mkGateway("traefik-a", "edge-a1"), mkGateway("traefik-b", "edge-b1"), mkGateway("traefik-c", "edge-c1")},
		"topology.kubernetes.io/zone")
	d, dropped, err := Decide(s, c)
	if err != nil || len(dropped) > 0 {
		t.Fatalf("decide: %v, dropped %v", err, dropped)
	}
	want := map[string]float64{"a": 80, "b": 120, "edge-c1": 10}
	for site, w := range want {
		if got := d.Sites[site]; math.Abs(got-w) > 0.1*w {
			t.Errorf("site %s: %.2f req/s, want %.0f ±10%%", site, got, w)
		}
	}
	if len(d.Sites) != len(want) {
		t.Errorf("sites %v, want %v", d.Sites, want)
	}
	if d.Busiest != "b" {
		t.Errorf("busiest %q, want b (%v)", d.Busiest, d.Sites)
	}
	t.Logf("decision: %v busiest %s", d.Sites, d.Busiest)
}

// TestPrometheusBadData: each kind of bad answer is a DataError with its
// reason, from a real Prometheus (or none at all).
func TestPrometheusBadData(t *testing.T) {
	t.Parallel()
	gw := promtest.ServeGateway(t, []promtest.Flow{{Node: "edge-a1", Entrypoint: "web", RPS: 20}, {Node: "ghost", Entrypoint: "web", RPS: 5}})
	prom := promtest.Start(t, gw)
	warm, err := NewPrometheus(PrometheusOptions{URL: prom.URL, Query: testQuery})
	if err != nil {
		t.Fatal(err)
	}
	waitWarm(t, warm)
	c := BuildCluster([]corev1.Node{mkNode("edge-a1", "a", "10.0.0.1")}, []corev1.Pod{mkGateway("traefik-a", "edge-a1")}, "topology.kubernetes.io/zone")
	for _, tc := range []struct {
		name, url, query string
		want             string // reason from Sample or Decide
		dropped          string // reason of a dropped node, decision still taken
	}{
		{name: "unreachable", url: "http://127.0.0.1:1", query: testQuery, want: ReasonPromUnreachable},
		{name: "bad query", query: `sum by (node) (rate(x[5s]`, want: ReasonPromQuery},
		{name: "empty result", query: `sum by (node) (rate(no_such_metric_total[5s]))`, want: ReasonEmptyResult},
		{name: "NaN rate", query: `sum by (node) (rate(traefik_entrypoint_requests_total[5s])) * 0 / 0`, want: ReasonBadRate},
		{name: "negative rate", query: `-1 * sum by (node) (rate(traefik_entrypoint_requests_total[5s]))`, want: ReasonBadRate},
		{name: "infinite rate", query: `sum by (node) (rate(traefik_entrypoint_requests_total[5s])) / 0`, want: ReasonBadRate},
		{name: "scalar result", query: `scalar(sum(rate(traefik_entrypoint_requests_total[5s])))`, want: ReasonBadResultType},
		{name: "no node label", query: `sum(rate(traefik_entrypoint_requests_total[5s]))`, want: ReasonMissingNode},
		{name: "only unknown nodes", query: `sum by (node) (rate(traefik_entrypoint_requests_total{node="ghost"}[5s]))`, want: ReasonUnknownNode},
		{name: "one unknown node", query: testQuery, dropped: ReasonUnknownNode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url
			if url == "" {
				url = prom.URL
			}
			p, err := NewPrometheus(PrometheusOptions{URL: url, Query: tc.query, Window: 5 * time.Second, Timeout: 3 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			s, err := p.Sample(context.Background(), time.Now())
			var dropped []*DataError
			if err == nil {
				_, dropped, err = Decide(s, c)
			}
			var de *DataError
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.want != "" && (!errors.As(err, &de) || de.Reason != tc.want):
				t.Fatalf("error %v, want reason %s", err, tc.want)
			}
			if tc.dropped != "" && (len(dropped) != 1 || dropped[0].Reason != tc.dropped) {
				t.Fatalf("dropped %v, want one %s", dropped, tc.dropped)
			}
			if err != nil {
				t.Logf("%s", err)
			}
		})
	}
}
