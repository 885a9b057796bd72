package discover

import (
	"context"
	"errors"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	otelmetric "go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	testingclock "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// pt is a point at t0+sec seconds, started at t0+start seconds (negative: no start).
type pt struct {
	sec, start float64
	v          float64
}

func ns(sec float64) uint64 {
	return uint64(t0.Add(time.Duration(sec * float64(time.Second))).UnixNano())
}

// request builds an export of the counter for one node.
func request(node string, temp metricspb.AggregationTemporality, monotonic bool, pts ...pt) *collectormetrics.ExportMetricsServiceRequest {
	sum := &metricspb.Sum{AggregationTemporality: temp, IsMonotonic: monotonic}
	for _, p := range pts {
		dp := &metricspb.NumberDataPoint{TimeUnixNano: ns(p.sec), Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: p.v},
			Attributes: []*commonpb.KeyValue{strAttr("entrypoint", "web")}}
		if p.start >= 0 {
			dp.StartTimeUnixNano = ns(p.start)
		}
		sum.DataPoints = append(sum.DataPoints, dp)
	}
	return exportOf(node, &metricspb.Metric{Name: DefaultOTLPMetric, Data: &metricspb.Metric_Sum{Sum: sum}})
}

func exportOf(node string, m ...*metricspb.Metric) *collectormetrics.ExportMetricsServiceRequest {
	return &collectormetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
		Resource:     &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr(DefaultNodeAttr, node)}},
		ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: m}},
	}}}
}

const (
	cum   = metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
	delta = metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
)

// TestOTLPRates checks the rate arithmetic for both temporalities on
// hand-built payloads: successive differences, resets, windowing, warm-up.
func TestOTLPRates(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reqs    []*collectormetrics.ExportMetricsServiceRequest
		now     float64 // seconds after t0
		want    map[string]float64
		warming []string
		reason  string
	}{
		{name: "cumulative, one point: warming up",
			reqs: []*collectormetrics.ExportMetricsServiceRequest{request("n1", cum, true, pt{10, 0, 500})},
			now:  10, want: map[string]float64{}, warming: []string{"n1"}},
		{name: "cumulative, steady 10/s",
			reqs: []*collectormetrics.ExportMetricsServiceRequest{request("n1", cum, true, pt{10, 0, 100}, pt{20, 0, 200}, pt{30, 0, 300})},
			now:  30, want: map[string]float64{"n1": 10}},
		{name: "cumulative, points out of order and repeated",
			reqs: []*collectormetrics.ExportMetricsServiceRequest{request("n1", cum, true, pt{20, 0, 200}), request("n1", cum, true, pt{10, 0, 100}, pt{20, 0, 200})},
			now:  25, want: map[string]float64{"n1": 10}},
		{name: "cumulative, counter reset by value drop",
			// 100 -> 200 (+100), restart, 50 (+50), 150 (+100): 250 in 30 s.
			reqs: []*collectormetrics.ExportMetricsServiceRequest{request("n1", cum, true, pt{10, 0, 100}, pt{20, 0, 200}, pt{30, 25, 50}, pt{40, 25, 150})},
			now:  40, want: map[string]float64{"n1": 250.0 / 30}},
		{name: "cumulative, reset seen only in the start time",
			// 100 -> restart at 15 -> 300 (all new): 300 in 10 s.
			reqs: []*collectormetrics.ExportMetricsServiceRequest{request("n1", cum, true, pt{10, 0, 100}, pt{20, 15, 300})},
			now:  20, want: map[string]float64{"n1": 30}},
		{name: "cumulative, only the window counts",
			// 0..60 s at 1/s, then 60..120 s at 5/s; window 60 s ending at 120.
			reqs: []*collectormetrics.ExportMetricsServiceRequest{request("n1", cum, true, pt{0, -1, 0}, pt{30, -1, 30}, pt{60, -1, 60}, pt{90, -1, 210}, pt{120, -1, 360})},
			now:  120, want: map[string]float64{"n1": 5}},
		{name: "cumulative, two series of one node add up",
			reqs: []*collectormetrics.ExportMetricsServiceRequest{
				request("n1", cum, true, pt{10, 0, 0}, pt{20, 0, 100}),
				request("n1", delta, true, pt{10, 0, 50}, pt{20, 10, 50})},
			now: 20, want: map[string]float64{"n1": 15}},
		{name: "delta with start times",
			reqs: []*collectormetrics.ExportMetricsServiceRequest{request("n1", delta, true, pt{10, 0, 40}, pt{20, 10, 40})},
			now:  20, want: map[string]float64{"n1": 4}},
		{name: "delta, single point with start time is a rate",
			reqs: []*collectormetrics.ExportMetricsServiceRequest{request("n1", delta, true, pt{10, 5, 40})},
			now:  10, want: map[string]float64{"n1": 8}},
		{name: "delta, no start times: first point only marks the start",
			reqs: []*collectormetrics.ExportMetricsServiceRequest{request("n1", delta, true, pt{10, -1, 999}, pt{20, -1, 30}, pt{30, -1, 50})},
			now:  30, want: map[string]float64{"n1": 4}},
		{name: "delta, no start time, one point: warming up",
			reqs: []*collectormetrics.ExportMetricsServiceRequest{request("n1", delta, true, pt{10, -1, 999})},
			now:  10, want: map[string]float64{}, warming: []string{"n1"}},
		{name: "delta, old points leave the window",
			reqs: []*collectormetrics.ExportMetricsServiceRequest{request("n1", delta, true, pt{0, -1, 0}, pt{30, 0, 3000}, pt{60, 30, 3000}, pt{90, 60, 300}, pt{120, 90, 300})},
			now:  120, want: map[string]float64{"n1": 10}},
		{name: "stale series is dropped: no data",
			reqs: []*collectormetrics.ExportMetricsServiceRequest{request("n1", cum, true, pt{10, 0, 100}, pt{20, 0, 200})},
			now:  200, reason: ReasonNoData},
		{name: "two nodes",
			reqs: []*collectormetrics.ExportMetricsServiceRequest{
				request("n1", cum, true, pt{10, 0, 100}, pt{20, 0, 300}),
				request("n2", delta, true, pt{10, 0, 5}, pt{20, 10, 5})},
			now: 20, want: map[string]float64{"n1": 20, "n2": 0.5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := testingclock.NewFakePassiveClock(t0.Add(time.Duration(tc.now * float64(time.Second))))
			r := NewOTLP(OTLPOptions{Window: time.Minute, Clock: clk, Match: map[string]string{"entrypoint": "web"}})
			for _, req := range tc.reqs {
				if n, msg := r.Ingest("", req); n != 0 {
					t.Fatalf("rejected %d: %s", n, msg)
				}
			}
			s, err := r.Sample(context.Background(), clk.Now())
			var de *DataError
			if tc.reason != "" {
				if !errors.As(err, &de) || de.Reason != tc.reason {
					t.Fatalf("error %v, want reason %s", err, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Rates) != len(tc.want) {
				t.Errorf("rates %v, want %v", s.Rates, tc.want)
			}
			for n, w := range tc.want {
				if math.Abs(s.Rates[n]-w) > 1e-9 {
					t.Errorf("node %s: %v req/s, want %v", n, s.Rates[n], w)
				}
			}
			if strings.Join(s.Warming, ",") != strings.Join(tc.warming, ",") || s.WarmingUp != (len(tc.warming) > 0) {
				t.Errorf("warming %v (%v), want %v", s.Warming, s.WarmingUp, tc.warming)
			}
		})
	}
}

// TestOTLPRejects: a gauge, histogram, up-down counter or unspecified
// temporality under the counter's name, a point without a node, and a
// negative or NaN value are rejected with a reason naming the metric.
func TestOTLPRejects(t *testing.T) {
	gauge := &metricspb.Metric{Name: DefaultOTLPMetric, Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: []*metricspb.NumberDataPoint{{TimeUnixNano: ns(1)}}}}}
	hist := &metricspb.Metric{Name: DefaultOTLPMetric, Data: &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{DataPoints: []*metricspb.HistogramDataPoint{{TimeUnixNano: ns(1)}, {TimeUnixNano: ns(2)}}}}}
	noNode := request("n1", cum, true, pt{1, 0, 1})
	noNode.ResourceMetrics[0].Resource = nil
	for _, tc := range []struct {
		name   string
		req    *collectormetrics.ExportMetricsServiceRequest
		n      int64
		reason string
		msg    string
	}{
		{"gauge", exportOf("n1", gauge), 1, ReasonOTLPWrongType, "is a gauge, want a counter"},
		{"histogram", exportOf("n1", hist), 2, ReasonOTLPWrongType, "is a histogram, want a counter"},
		{"up-down counter", request("n1", cum, false, pt{1, 0, 1}), 1, ReasonOTLPWrongType, "non-monotonic sum"},
		{"unspecified temporality", request("n1", metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_UNSPECIFIED, true, pt{1, 0, 1}), 1, ReasonOTLPWrongType, "temporality"},
		{"no node", noNode, 1, ReasonMissingNode, `no "k8s.node.name"`},
		{"negative value", request("n1", cum, true, pt{1, 0, -5}), 1, ReasonOTLPBadPoint, "-5"},
		{"NaN value", request("n1", cum, true, pt{1, 0, math.NaN()}), 1, ReasonOTLPBadPoint, "NaN"},
		{"no time", &collectormetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr(DefaultNodeAttr, "n1")}},
			ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{{Name: DefaultOTLPMetric, Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{
				AggregationTemporality: cum, IsMonotonic: true, DataPoints: []*metricspb.NumberDataPoint{{Value: &metricspb.NumberDataPoint_AsInt{AsInt: 3}}}}}}}}},
		}}}, 1, ReasonOTLPBadPoint, "no valid time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []*DataError
			r := NewOTLP(OTLPOptions{Clock: testingclock.NewFakePassiveClock(t0), Report: func(e *DataError) { got = append(got, e) }})
			resp, err := r.Export(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			ps := resp.GetPartialSuccess()
			if ps.GetRejectedDataPoints() != tc.n || !strings.Contains(ps.GetErrorMessage(), tc.msg) {
				t.Errorf("partial success %v, want %d rejected with %q", ps, tc.n, tc.msg)
			}
			if len(got) == 0 || got[0].Reason != tc.reason || !strings.Contains(got[0].Error(), DefaultOTLPMetric) {
				t.Errorf("reported %v, want reason %s naming %s", got, tc.reason, DefaultOTLPMetric)
			}
			if _, err := r.Sample(context.Background(), t0); err == nil {
				t.Error("rejected points produced a rate")
			}
		})
	}
}

// TestOTLPFullReceiverSweeps: a receiver at its series cap refuses a new
// source while every series is live, and takes it once a source stopped
// pushing for a window, without waiting for the next Sample to drop its
// series.
func TestOTLPFullReceiverSweeps(t *testing.T) {
	clk := testingclock.NewFakePassiveClock(t0)
	r := NewOTLP(OTLPOptions{Clock: clk, Limits: OTLPLimits{MaxSeries: 2, MaxSeriesPerSource: 2}})
	for _, n := range []string{"n1", "n2"} {
		if rej, msg := r.Ingest("10.0.0.1", request(n, cum, true, pt{0, -1, 1})); rej != 0 {
			t.Fatalf("source a's series %s rejected: %s", n, msg)
		}
	}
	if rej, msg := r.Ingest("10.0.0.2", request("n3", cum, true, pt{0, -1, 1})); rej != 1 || !strings.Contains(msg, "the limit") {
		t.Errorf("a new source at the cap: %d rejected (%q), want 1 naming the limit", rej, msg)
	}
	later := DefaultOTLPWindow + time.Second
	clk.SetTime(t0.Add(later))
	if rej, msg := r.Ingest("10.0.0.2", request("n3", cum, true, pt{later.Seconds(), -1, 1})); rej != 0 {
		t.Errorf("a new source after the old one went quiet for a window: rejected: %s", msg)
	}
	if got := len(r.series); got != 1 {
		t.Errorf("%d series held, want 1 (the new source's)", got)
	}
}

// startReceiver serves a receiver on a loopback port until the test ends.
func startReceiver(t *testing.T, o OTLPOptions) (*OTLP, string) {
	t.Helper()
	if o.Auth == (OTLPAuth{}) {
		o.Auth.Insecure = true // loopback, the SDK exporter without credentials
	}
	r := NewOTLP(o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeOTLP(ctx, ln, r) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return r, ln.Addr().String()
}

// sdkMeter is a real OpenTelemetry SDK MeterProvider exporting over OTLP
// gRPC to addr every interval, as the given node.
func sdkMeter(t *testing.T, addr, node string, temp metricdata.Temporality, interval time.Duration, opts ...otlpmetricgrpc.Option) *sdkmetric.MeterProvider {
	t.Helper()
	exp, err := otlpmetricgrpc.New(context.Background(), append([]otlpmetricgrpc.Option{otlpmetricgrpc.WithEndpoint(addr), otlpmetricgrpc.WithInsecure(),
		otlpmetricgrpc.WithTemporalitySelector(func(sdkmetric.InstrumentKind) metricdata.Temporality { return temp })}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(interval))),
		sdkmetric.WithResource(resource.NewSchemaless(attribute.String("k8s.node.name", node), attribute.String("service.name", "traefik"))),
	)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = mp.Shutdown(ctx)
	})
	return mp
}

// drive adds to c at rps requests per second until ctx ends.
func drive(ctx context.Context, wg *sync.WaitGroup, c otelmetric.Float64Counter, rps float64, attrs ...attribute.KeyValue) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		start, added := time.Now(), 0.0
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		opt := otelmetric.WithAttributes(attrs...)
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tk.C:
				if want := rps * now.Sub(start).Seconds(); want > added {
					c.Add(ctx, want-added, opt)
					added = want
				}
			}
		}
	}()
}

// TestOTLPSDKRates pushes counters from the real OpenTelemetry Go SDK
// (otlpmetricgrpc exporter) with cumulative and with delta temporality, and
// gzip-compressed as Traefik and the OpenTelemetry Collector push by
// default; the receiver's per-node rates match the rates driven.
func TestOTLPSDKRates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		temp metricdata.Temporality
		opts []otlpmetricgrpc.Option
	}{
		{"cumulative", metricdata.CumulativeTemporality, nil},
		{"delta", metricdata.DeltaTemporality, nil},
		{"cumulative gzip", metricdata.CumulativeTemporality, []otlpmetricgrpc.Option{otlpmetricgrpc.WithCompressor("gzip")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, addr := startReceiver(t, OTLPOptions{Window: 2 * time.Second, Match: map[string]string{"entrypoint": "web"}})
			want := map[string]float64{"edge-a1": 200, "edge-b1": 50}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel()
			for node, rps := range want {
				mp := sdkMeter(t, addr, node, tc.temp, 200*time.Millisecond, tc.opts...)
				c, err := mp.Meter("traefik").Float64Counter(DefaultOTLPMetric)
				if err != nil {
					t.Fatal(err)
				}
				drive(ctx, &wg, c, rps, attribute.String("entrypoint", "web"), attribute.String("code", "200"))
				drive(ctx, &wg, c, 1000, attribute.String("entrypoint", "websecure")) // filtered out
			}
			sawWarming := false
			deadline := time.Now().Add(20 * time.Second)
			for {
				s, err := r.Sample(ctx, time.Now())
				ok := err == nil && !s.WarmingUp && len(s.Rates) == len(want)
				if err == nil && s.WarmingUp {
					sawWarming = true
				}
				// Let the window fill before judging the figures.
				if ok && time.Since(deadline.Add(-20*time.Second)) > 3*time.Second {
					for node, w := range want {
						if got := s.Rates[node]; math.Abs(got-w) > 0.1*w {
							t.Errorf("%s: %.1f req/s, want %.0f ±10%%", node, got, w)
						}
					}
					t.Logf("rates %v", s.Rates)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no warm rates after 20s: %v %v", s, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			// A cumulative series needs two points; the SDK's delta points carry
			// their start time, so one is already a rate.
			if !sawWarming && tc.temp == metricdata.CumulativeTemporality {
				t.Error("never reported warming up before the second cumulative point")
			}
		})
	}
}

// TestOTLPSDKWrongType: the SDK exporting a gauge and a histogram under the
// counter's name gets them rejected, reported with the metric's name.
func TestOTLPSDKWrongType(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []*DataError
	r, addr := startReceiver(t, OTLPOptions{Metric: "requests_gauge", Report: func(e *DataError) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e)
	}})
	mp := sdkMeter(t, addr, "edge-a1", metricdata.CumulativeTemporality, time.Hour)
	g, err := mp.Meter("traefik").Float64Gauge("requests_gauge")
	if err != nil {
		t.Fatal(err)
	}
	g.Record(context.Background(), 42)
	if err := mp.ForceFlush(context.Background()); err != nil {
		t.Logf("flush: %v (partial success is reported as an error by the SDK)", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Reason != ReasonOTLPWrongType || !strings.Contains(got[0].Detail, "requests_gauge is a gauge") {
		t.Fatalf("reported %v, want one %s naming requests_gauge", got, ReasonOTLPWrongType)
	}
	if _, err := r.Sample(context.Background(), time.Now()); err == nil {
		t.Error("a gauge produced a rate")
	}
}
