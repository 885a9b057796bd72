package discover

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	// OTLP exporters (Traefik's, the OpenTelemetry Collector's) push
	// gzip-compressed by default; the receiver must not rely on some other
	// package of the binary registering the decompressor.
	_ "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"k8s.io/utils/clock"
)

// OTLP defaults.
const (
	DefaultOTLPMetric = "traefik_entrypoint_requests_total"
	DefaultNodeAttr   = "k8s.node.name"
	DefaultOTLPWindow = time.Minute
	// MaxOTLPRequestBytes bounds one push; with DefaultOTLPMaxInFlight of
	// them decoded at once, discovery stays well inside the chart's 256Mi.
	MaxOTLPRequestBytes = 4 << 20
	// DefaultOTLPMaxInFlight is how many pushes are taken at once; more get
	// RESOURCE_EXHAUSTED (the exporter retries).
	DefaultOTLPMaxInFlight = 4
	// DefaultOTLPMaxSeries bounds the series held in all.
	DefaultOTLPMaxSeries = 10000
	// DefaultOTLPMaxSeriesPerSource bounds the series one source (a peer
	// address, one gateway pod) holds, so that a flood from one source
	// cannot fill the cap and lock out the others.
	DefaultOTLPMaxSeriesPerSource = 500
	// DefaultOTLPMaxSeriesBytes bounds a series' identity (its node, resource,
	// scope and point attributes); a point over it is rejected.
	DefaultOTLPMaxSeriesBytes = 2048
	// DefaultOTLPMaxFutureSkew is how far ahead of this clock a point may be
	// stamped.
	DefaultOTLPMaxFutureSkew = 10 * time.Second
	maxPointsPerSeries       = 10000
)

// Reasons of OTLP refusals beside the DataError reasons in decision.go.
const (
	ReasonOTLPFuture        = "otlp_future_timestamp"
	ReasonOTLPTooManySeries = "otlp_too_many_series"
	ReasonOTLPTooLarge      = "otlp_series_too_large"
	ReasonOTLPUnauthorized  = "otlp_unauthenticated"
	ReasonOTLPInFlight      = "otlp_in_flight"
)

// OTLPLimits bound what pushes may cost. Zero values take the defaults.
type OTLPLimits struct {
	MaxInFlight        int
	MaxSeries          int
	MaxSeriesPerSource int
	MaxSeriesBytes     int
	MaxFutureSkew      time.Duration
}

func (l OTLPLimits) withDefaults() OTLPLimits {
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = DefaultOTLPMaxInFlight
	}
	if l.MaxSeries <= 0 {
		l.MaxSeries = DefaultOTLPMaxSeries
	}
	if l.MaxSeriesPerSource <= 0 {
		l.MaxSeriesPerSource = DefaultOTLPMaxSeriesPerSource
	}
	if l.MaxSeriesBytes <= 0 {
		l.MaxSeriesBytes = DefaultOTLPMaxSeriesBytes
	}
	if l.MaxFutureSkew <= 0 {
		l.MaxFutureSkew = DefaultOTLPMaxFutureSkew
	}
	return l
}

// OTLPAuth says who may push: TLS (CertFile, KeyFile) with a bearer token
// (TokenFile: "authorization: Bearer <token>" metadata) or a client
// certificate signed by ClientCAFile (mTLS), or both. Without either the
// receiver refuses to start unless Insecure is set (a lab on loopback).
type OTLPAuth struct {
	CertFile, KeyFile string
	ClientCAFile      string
	TokenFile         string
	Insecure          bool
}

// OTLPOptions configures the OTLP receiver.
type OTLPOptions struct {
	// Metric is the counter to read; empty means DefaultOTLPMetric.
	Metric string
	// NodeAttr is the resource attribute (or, failing that, data point
	// attribute) naming the node; empty means DefaultNodeAttr.
	NodeAttr string
	// Match are data point attributes a point must carry to count, e.g.
	// entrypoint=web.
	Match map[string]string
	// Window is the span rates are averaged over; zero means DefaultOTLPWindow.
	Window time.Duration
	// Clock gives now; nil means the real clock.
	Clock clock.PassiveClock
	// Report is told about every rejected payload part; nil ignores them.
	Report func(*DataError)
	// Limits bound what pushes may cost.
	Limits OTLPLimits
	// Auth says who may push (ServeOTLP).
	Auth OTLPAuth
}

// OTLP is an OTLP/gRPC MetricsService receiver that turns a counter, pushed
// with cumulative or delta temporality, into per-node request rates.
type OTLP struct {
	collectormetrics.UnimplementedMetricsServiceServer
	o OTLPOptions

	mu     sync.Mutex
	series map[string]*series
	// perSource counts each source's series.
	perSource map[string]int
	inFlight  chan struct{}
	// swept is when a full receiver last dropped its expired series.
	swept time.Time
}

type point struct {
	start, t time.Time
	v        float64
}

type series struct {
	node   string
	source string
	delta  bool
	points []point // by time
	// arrived is when a point of the series last arrived, by this clock:
	// a series goes stale by it, not by its points' own timestamps.
	arrived time.Time
}

// NewOTLP returns a receiver; serve it with ServeOTLP.
func NewOTLP(o OTLPOptions) *OTLP {
	if o.Metric == "" {
		o.Metric = DefaultOTLPMetric
	}
	if o.NodeAttr == "" {
		o.NodeAttr = DefaultNodeAttr
	}
	if o.Window <= 0 {
		o.Window = DefaultOTLPWindow
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Report == nil {
		o.Report = func(*DataError) {}
	}
	o.Limits = o.Limits.withDefaults()
	return &OTLP{o: o, series: map[string]*series{}, perSource: map[string]int{}, inFlight: make(chan struct{}, o.Limits.MaxInFlight)}
}

// Name implements Source.
func (r *OTLP) Name() string { return "otlp" }

// Window is the rate window.
func (r *OTLP) Window() time.Duration { return r.o.Window }

// Export implements the OTLP MetricsService. Rejected points are reported
// back in partial_success, as the OTLP specification asks. The source of a
// push, for the per-source series cap, is its peer's IP address.
func (r *OTLP) Export(ctx context.Context, req *collectormetrics.ExportMetricsServiceRequest) (*collectormetrics.ExportMetricsServiceResponse, error) {
	rejected, msg := r.Ingest(peerSource(ctx), req)
	resp := &collectormetrics.ExportMetricsServiceResponse{}
	if rejected > 0 {
		resp.PartialSuccess = &collectormetrics.ExportMetricsPartialSuccess{RejectedDataPoints: rejected, ErrorMessage: msg}
	}
	return resp, nil
}

// Ingest takes the configured counter's points from a request pushed by
// source and returns how many points it rejected and why (the first reason).
// Each reason is reported once per request.
func (r *OTLP) Ingest(source string, req *collectormetrics.ExportMetricsServiceRequest) (rejected int64, msg string) {
	reported := map[string]bool{}
	reject := func(n int, e *DataError) {
		rejected += int64(n)
		if msg == "" {
			msg = e.Error()
		}
		if !reported[e.Reason] {
			reported[e.Reason] = true
			e.Source = source
			r.o.Report(e)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rm := range req.GetResourceMetrics() {
		resAttrs := rm.GetResource().GetAttributes()
		resNode := attrString(resAttrs, r.o.NodeAttr)
		resKey := attrsKey(resAttrs)
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				if m.GetName() != r.o.Metric {
					continue
				}
				sum, n, kind := m.GetSum(), dataPoints(m), dataKind(m)
				if sum == nil {
					reject(n, &DataError{Reason: ReasonOTLPWrongType,
						Detail: fmt.Sprintf("metric %s is a %s, want a counter (a monotonic sum); %d points rejected", m.GetName(), kind, n)})
					continue
				}
				if !sum.GetIsMonotonic() {
					reject(n, &DataError{Reason: ReasonOTLPWrongType,
						Detail: fmt.Sprintf("metric %s is a non-monotonic sum (an up-down counter), want a counter; %d points rejected", m.GetName(), n)})
					continue
				}
				temp := sum.GetAggregationTemporality()
				if temp != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE && temp != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA {
					reject(n, &DataError{Reason: ReasonOTLPWrongType,
						Detail: fmt.Sprintf("metric %s has aggregation temporality %s, want cumulative or delta; %d points rejected", m.GetName(), temp, n)})
					continue
				}
				delta := temp == metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
				for _, dp := range sum.GetDataPoints() {
					if e := r.addPoint(source, resNode, resKey, sm.GetScope().GetName(), delta, dp); e != nil {
						reject(1, e)
					}
				}
			}
		}
	}
	return rejected, msg
}

func (r *OTLP) addPoint(source, resNode, resKey, scope string, delta bool, dp *metricspb.NumberDataPoint) *DataError {
	attrs := dp.GetAttributes()
	for k, want := range r.o.Match {
		if attrString(attrs, k) != want {
			return nil // another entrypoint: not ours, not an error
		}
	}
	node := resNode
	if node == "" {
		node = attrString(attrs, r.o.NodeAttr)
	}
	if node == "" {
		return &DataError{Reason: ReasonMissingNode,
			Detail: fmt.Sprintf("metric %s: a point has no %q resource or point attribute, so its node is unknown", r.o.Metric, r.o.NodeAttr)}
	}
	var v float64
	switch x := dp.GetValue().(type) {
	case *metricspb.NumberDataPoint_AsDouble:
		v = x.AsDouble
	case *metricspb.NumberDataPoint_AsInt:
		v = float64(x.AsInt)
	default:
		return &DataError{Reason: ReasonOTLPBadPoint, Detail: fmt.Sprintf("metric %s node %s: point has no value", r.o.Metric, node)}
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return &DataError{Reason: ReasonOTLPBadPoint, Detail: fmt.Sprintf("metric %s node %s: counter value %v is not a finite number >= 0", r.o.Metric, node, v)}
	}
	ts := dp.GetTimeUnixNano()
	if ts == 0 || ts > math.MaxInt64 {
		return &DataError{Reason: ReasonOTLPBadPoint, Detail: fmt.Sprintf("metric %s node %s: point has no valid time", r.o.Metric, node)}
	}
	now := r.o.Clock.Now()
	p := point{t: time.Unix(0, int64(ts)), v: v}
	if skew := p.t.Sub(now); skew > r.o.Limits.MaxFutureSkew {
		return &DataError{Reason: ReasonOTLPFuture, Detail: fmt.Sprintf("metric %s node %.60s: point stamped %s ahead of this clock (at most %s)",
			r.o.Metric, node, skew.Round(time.Second), r.o.Limits.MaxFutureSkew)}
	}
	if st := dp.GetStartTimeUnixNano(); st > 0 && st < ts {
		p.start = time.Unix(0, int64(st))
	}
	temp := "cumulative"
	if delta {
		temp = "delta"
	}
	key := strings.Join([]string{node, temp, resKey, scope, attrsKey(attrs)}, "\x00")
	if len(key) > r.o.Limits.MaxSeriesBytes {
		return &DataError{Reason: ReasonOTLPTooLarge, Detail: fmt.Sprintf("metric %s node %.60s: the series' attributes are %d bytes, over the %d-byte limit",
			r.o.Metric, node, len(key), r.o.Limits.MaxSeriesBytes)}
	}
	s := r.series[key]
	if s == nil {
		if n := r.perSource[source]; n >= r.o.Limits.MaxSeriesPerSource {
			return &DataError{Reason: ReasonOTLPTooManySeries, Detail: fmt.Sprintf("metric %s: source %s holds %d series, its limit; point of node %.60s dropped",
				r.o.Metric, source, n, node)}
		}
		if len(r.series) >= r.o.Limits.MaxSeries {
			r.sweepLocked(now)
		}
		if len(r.series) >= r.o.Limits.MaxSeries {
			return &DataError{Reason: ReasonOTLPTooManySeries, Detail: fmt.Sprintf("metric %s: %d series held, the limit; point of node %.60s dropped",
				r.o.Metric, r.o.Limits.MaxSeries, node)}
		}
		s = &series{node: node, source: source, delta: delta}
		r.series[key] = s
		r.perSource[source]++
	}
	s.arrived = now
	s.add(p)
	return nil
}

// expired: nothing of ser arrived in the window ending at now.
func (r *OTLP) expired(ser *series, now time.Time) bool { return now.Sub(ser.arrived) > r.o.Window }

func (r *OTLP) dropLocked(key string, ser *series) {
	delete(r.series, key)
	if r.perSource[ser.source]--; r.perSource[ser.source] <= 0 {
		delete(r.perSource, ser.source)
	}
}

// sweepLocked drops the expired series of a full receiver, so that a new
// source takes the room of one that stopped pushing before the next Sample
// would drop it; at most once a second, as a flood of new series at the cap
// must not buy a scan of every series per point.
func (r *OTLP) sweepLocked(now time.Time) {
	if now.Sub(r.swept) < time.Second {
		return
	}
	r.swept = now
	for key, ser := range r.series {
		if r.expired(ser, now) {
			r.dropLocked(key, ser)
		}
	}
}

// add inserts p in time order; a point at an existing time replaces it.
func (s *series) add(p point) {
	i := sort.Search(len(s.points), func(i int) bool { return !s.points[i].t.Before(p.t) })
	switch {
	case i < len(s.points) && s.points[i].t.Equal(p.t):
		s.points[i] = p
	case i == len(s.points):
		s.points = append(s.points, p)
	default:
		s.points = append(s.points, point{})
		copy(s.points[i+1:], s.points[i:])
		s.points[i] = p
	}
	if len(s.points) > maxPointsPerSeries {
		s.points = s.points[len(s.points)-maxPointsPerSeries:]
	}
}

// rate returns the series' rate over the window ending at now; ok is false
// while it cannot be computed yet, stale is true when the series has no
// point in the window (its node stopped reporting).
func (s *series) rate(now time.Time, window time.Duration) (rate float64, ok, stale bool) {
	cut := now.Add(-window)
	// Keep the last point at or before the cut as the baseline; older ones go.
	base := 0
	for i, p := range s.points {
		if p.t.After(cut) {
			break
		}
		base = i
	}
	s.points = s.points[base:]
	pts := s.points
	if len(pts) == 0 || !pts[len(pts)-1].t.After(cut) {
		return 0, false, true
	}
	last := pts[len(pts)-1]
	if s.delta {
		// Each point is the increase over (start, t]; sum those in the window.
		in := pts
		if !pts[0].t.After(cut) {
			in = pts[1:]
		}
		begin := in[0].start
		if begin.IsZero() {
			if len(pts) > len(in) {
				begin = pts[0].t // the point before ends where this one starts
			} else {
				if len(in) < 2 {
					return 0, false, false
				}
				begin, in = in[0].t, in[1:]
			}
		}
		var sum float64
		for _, p := range in {
			sum += p.v
		}
		span := last.t.Sub(begin).Seconds()
		if span <= 0 {
			return 0, false, false
		}
		return sum / span, true, false
	}
	// Cumulative: add up successive differences; a drop in value or a new
	// start time is a reset, after which the new value is all increase.
	if len(pts) < 2 {
		return 0, false, false
	}
	var inc float64
	for i := 1; i < len(pts); i++ {
		prev, cur := pts[i-1], pts[i]
		reset := cur.v < prev.v || (!cur.start.IsZero() && !prev.start.IsZero() && !cur.start.Equal(prev.start))
		if reset {
			inc += cur.v
		} else {
			inc += cur.v - prev.v
		}
	}
	return inc / last.t.Sub(pts[0].t).Seconds(), true, false
}

// Sample returns per-node rates over the window ending now. A node whose
// series all lack a second point is warming up and has no rate yet.
func (r *OTLP) Sample(_ context.Context, now time.Time) (Sample, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Sample{Source: r.Name(), At: now, Window: r.o.Window, Rates: map[string]float64{}}
	warming := map[string]bool{}
	for key, ser := range r.series {
		v, ok, stale := ser.rate(now, r.o.Window)
		switch {
		case stale || r.expired(ser, now):
			// Nothing arrived in the window (whatever the points claim).
			r.dropLocked(key, ser)
		case !ok:
			warming[ser.node] = true
		default:
			s.Rates[ser.node] += v
		}
	}
	for n := range warming {
		s.Warming = append(s.Warming, n)
	}
	sort.Strings(s.Warming)
	s.WarmingUp = len(s.Warming) > 0
	if len(s.Rates) == 0 {
		if s.WarmingUp {
			return s, nil
		}
		return Sample{}, &DataError{Reason: ReasonNoData,
			Detail: fmt.Sprintf("no %s points received over OTLP in the last %s", r.o.Metric, r.o.Window)}
	}
	return s, nil
}

// tap admits a new stream when fewer than MaxInFlight are open, and frees
// its token when the stream's context ends (gRPC cancels it as the stream
// closes). It runs under the transport's lock: it must not block.
func (r *OTLP) tap(ctx context.Context, _ *tap.Info) (context.Context, error) {
	select {
	case r.inFlight <- struct{}{}:
		go func() { <-ctx.Done(); <-r.inFlight }()
		return ctx, nil
	default:
		r.o.Report(&DataError{Reason: ReasonOTLPInFlight, Source: peerSource(ctx),
			Detail: fmt.Sprintf("%d pushes in progress, the limit; push refused", r.o.Limits.MaxInFlight)})
		return nil, status.Errorf(codes.ResourceExhausted, "%d pushes in progress, the limit", r.o.Limits.MaxInFlight)
	}
}

// ServeOTLP serves the receiver on ln until ctx ends, over TLS with a
// bearer token or a client certificate as r's Auth says.
func ServeOTLP(ctx context.Context, ln net.Listener, r *OTLP) error {
	opts, err := r.o.Auth.serverOptions(r.o.Report)
	if err != nil {
		return err
	}
	opts = append(opts, grpc.MaxRecvMsgSize(MaxOTLPRequestBytes),
		// The in-flight limit is taken when a stream opens, before gRPC
		// reads and decodes its message, so it bounds decoding memory.
		grpc.InTapHandle(r.tap),
		grpc.MaxConcurrentStreams(1),
		// Fixed 64 KiB flow-control windows (no BDP growth): a connection
		// whose stream waits or was refused buffers no more than that.
		grpc.InitialWindowSize(64<<10), grpc.InitialConnWindowSize(64<<10),
		grpc.ConnectionTimeout(10*time.Second))
	srv := grpc.NewServer(opts...)
	collectormetrics.RegisterMetricsServiceServer(srv, r)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("OTLP gRPC server: %w", err)
		}
		return nil
	case <-ctx.Done():
		done := make(chan struct{})
		go func() { srv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			srv.Stop()
		}
		return nil
	}
}

func dataPoints(m *metricspb.Metric) int {
	switch d := m.GetData().(type) {
	case *metricspb.Metric_Sum:
		return len(d.Sum.GetDataPoints())
	case *metricspb.Metric_Gauge:
		return len(d.Gauge.GetDataPoints())
	case *metricspb.Metric_Histogram:
		return len(d.Histogram.GetDataPoints())
	case *metricspb.Metric_ExponentialHistogram:
		return len(d.ExponentialHistogram.GetDataPoints())
	case *metricspb.Metric_Summary:
		return len(d.Summary.GetDataPoints())
	}
	return 0
}

func dataKind(m *metricspb.Metric) string {
	switch m.GetData().(type) {
	case *metricspb.Metric_Sum:
		return "sum"
	case *metricspb.Metric_Gauge:
		return "gauge"
	case *metricspb.Metric_Histogram:
		return "histogram"
	case *metricspb.Metric_ExponentialHistogram:
		return "exponential histogram"
	case *metricspb.Metric_Summary:
		return "summary"
	}
	return "metric without data"
}

func attrString(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return anyString(kv.GetValue())
		}
	}
	return ""
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	}
	return ""
}

// attrsKey is a canonical form of an attribute set, for series identity.
func attrsKey(kvs []*commonpb.KeyValue) string {
	parts := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		parts = append(parts, kv.GetKey()+"="+anyString(kv.GetValue()))
	}
	sort.Strings(parts)
	return strings.Join(parts, "\x01")
}
