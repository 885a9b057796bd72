package discover

import (
	"context"
	"testing"
	"time"

	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"
	testingclock "k8s.io/utils/clock/testing"
)

// seedRequests are well-formed and wrong-typed exports: the fuzz seeds.
func seedRequests() []*collectormetrics.ExportMetricsServiceRequest {
	gauge := &metricspb.Metric{Name: DefaultOTLPMetric, Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: []*metricspb.NumberDataPoint{{TimeUnixNano: ns(1)}}}}}
	return []*collectormetrics.ExportMetricsServiceRequest{
		request("n1", cum, true, pt{10, 0, 100}, pt{20, 0, 200}),
		request("n1", delta, true, pt{10, 0, 40}, pt{20, 10, 40}),
		request("n1", cum, true, pt{10, 0, 100}, pt{20, 15, 5}),
		request("n1", cum, false, pt{1, 0, 1}),
		exportOf("n1", gauge),
	}
}

// FuzzOTLPExport feeds arbitrary bytes through what the gRPC server does with
// a request (its proto codec's proto.Unmarshal, then OTLP.Export) and rate
// computation: nothing may panic, a rejection is reported back in
// partial_success, and no rate may be NaN or negative.
func FuzzOTLPExport(f *testing.F) {
	for _, r := range seedRequests() {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		req := &collectormetrics.ExportMetricsServiceRequest{}
		if err := proto.Unmarshal(b, req); err != nil {
			return
		}
		clk := testingclock.NewFakePassiveClock(t0.Add(20 * time.Second))
		r := NewOTLP(OTLPOptions{Clock: clk})
		resp, err := r.Export(context.Background(), req)
		if err != nil {
			t.Fatalf("Export: %v", err)
		}
		if ps := resp.GetPartialSuccess(); ps != nil && (ps.GetRejectedDataPoints() <= 0 || ps.GetErrorMessage() == "") {
			t.Fatalf("partial_success without a count or a reason: %v", ps)
		}
		for _, at := range []time.Duration{0, 20 * time.Second, time.Hour} {
			s, err := r.Sample(context.Background(), t0.Add(at))
			if err != nil {
				continue
			}
			for n, v := range s.Rates {
				if v != v || v < 0 {
					t.Fatalf("node %q: rate %v", n, v)
				}
			}
		}
	})
}
