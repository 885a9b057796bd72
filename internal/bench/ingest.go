package bench

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/utils/clock"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/broker"
	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/source"
	"github.com/ning-edge/ning/internal/topology"
)

// IngestOptions size the probe-report ingest measurement: one prober per
// node, NodesPerSite nodes per site, each report naming Fanout other sites.
type IngestOptions struct {
	Sites, NodesPerSite, Fanout int
	// Rounds is how many reports each prober sends in the timed run.
	Rounds int
	Log    *slog.Logger
}

// IngestResult is the scale-of-data figures at one size.
type IngestResult struct {
	Sites, Nodes, Fanout, Reports int
	// ReportsPerSecond went from the probers' publishers through the embedded
	// broker and the MQTT source into the store.
	ReportsPerSecond float64
	// StoreNsPerReport is the source's cost per report without the broker:
	// decode, validate, cross-check and store (source.MQTT.Handle).
	StoreNsPerReport float64
	// BytesPerSite and BytesPerNode are the live heap the store and source
	// hold once every prober has reported, divided by sites and by nodes.
	BytesPerSite, BytesPerNode float64
}

// DefaultIngestFanout is how many other sites one prober reports on.
const DefaultIngestFanout = 16

func (o IngestOptions) withDefaults() IngestOptions {
	if o.NodesPerSite <= 0 {
		o.NodesPerSite = 1
	}
	if o.Fanout <= 0 {
		o.Fanout = DefaultIngestFanout
	}
	o.Fanout = min(o.Fanout, o.Sites-1)
	if o.Rounds <= 0 {
		o.Rounds = 3
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// probeReport is what node n of site i reports: RTTs to the first node of the
// next Fanout sites, and its own load.
func probeReport(o IngestOptions, i, n int, at time.Time, round int) *ningv1.LatencyReport {
	r := &ningv1.LatencyReport{
		SourceSite: ingestSite(i), SourceNode: fmt.Sprintf("%s-n%d", ingestSite(i), n), Time: timestamppb.New(at),
		Method: ningv1.ProbeMethod_PROBE_METHOD_ICMP_RAW,
		Load:   &ningv1.NodeLoad{CpuUtilisation: 0.3, Cpu: &ningv1.Pressure{SomeAvg10: 1}},
	}
	for k := 1; k <= o.Fanout; k++ {
		j := (i + k) % o.Sites
		ms := float64(5+(i*7+j*13)%80) + float64(round%3)/10
		r.Targets = append(r.Targets, &ningv1.TargetResult{
			Site: ingestSite(j), Node: ingestSite(j) + "-n0", Address: fmt.Sprintf("10.%d.%d.1", j/250, j%250), Sent: 3, Received: 3,
			RttMs: []float64{ms, ms, ms}, MinMs: ms, AvgMs: ms, MaxMs: ms, P50Ms: ms, P99Ms: ms,
		})
	}
	return r
}

func ingestSite(i int) string { return fmt.Sprintf("s%04d", i) }

func newIngestSource() (*source.MQTT, *topology.Store, error) {
	store := topology.NewStore(topology.Config{}, clock.RealClock{})
	src, err := source.NewMQTT(store, source.Config{}, clock.RealClock{}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, nil, fmt.Errorf("mqtt source: %w", err)
	}
	return src, store, nil
}

// RunIngest measures, at one size, the store's memory and update cost fed
// directly, then the reports per second through a real embedded broker.
func RunIngest(ctx context.Context, o IngestOptions) (*IngestResult, error) {
	if o.Sites < 2 {
		return nil, fmt.Errorf("ingest: need at least 2 sites, got %d", o.Sites)
	}
	o = o.withDefaults()
	res := &IngestResult{Sites: o.Sites, Nodes: o.Sites * o.NodesPerSite, Fanout: o.Fanout}
	if err := measureStore(o, res); err != nil {
		return nil, err
	}
	if err := measureBroker(ctx, o, res); err != nil {
		return nil, err
	}
	return res, nil
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func measureStore(o IngestOptions, res *IngestResult) error {
	topic := func(i int) string { return mqtt.TopicLatencyPrefix + ingestSite(i) }
	payload := func(i, n, round int) ([]byte, error) {
		return proto.Marshal(probeReport(o, i, n, time.Now(), round))
	}
	before := heap()
	src, store, err := newIngestSource()
	if err != nil {
		return err
	}
	for i := range o.Sites {
		for n := range o.NodesPerSite {
			p, err := payload(i, n, 0)
			if err != nil {
				return fmt.Errorf("marshal: %w", err)
			}
			src.Handle(topic(i), p)
		}
	}
	after := heap()
	if got := len(store.Sites()); got != o.Sites {
		return fmt.Errorf("ingest: the store holds %d sites, want %d (reports rejected)", got, o.Sites)
	}
	grown := float64(after) - float64(before)
	res.BytesPerSite, res.BytesPerNode = grown/float64(o.Sites), grown/float64(res.Nodes)
	// Update cost: every prober reports Rounds more times into the filled store.
	payloads := make([][]byte, 0, o.Sites*o.NodesPerSite)
	for i := range o.Sites {
		for n := range o.NodesPerSite {
			p, err := payload(i, n, 1)
			if err != nil {
				return fmt.Errorf("marshal: %w", err)
			}
			payloads = append(payloads, p)
		}
	}
	start := time.Now()
	for range o.Rounds {
		for k, p := range payloads {
			src.Handle(topic(k/o.NodesPerSite), p)
		}
	}
	res.StoreNsPerReport = float64(time.Since(start).Nanoseconds()) / float64(o.Rounds*len(payloads))
	runtime.KeepAlive(src)
	return nil
}

func measureBroker(ctx context.Context, o IngestOptions, res *IngestResult) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b, err := broker.New(broker.Config{Listen: "127.0.0.1:0", AllowAnonymous: true}, o.Log)
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if err := b.Start(); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	defer func() { _ = b.Close() }()
	cfg := mqtt.Config{BrokerURL: "mqtt://" + b.Addr()}
	src, store, err := newIngestSource()
	if err != nil {
		return err
	}
	var got atomic.Int64
	arrived := make(chan struct{}, 1)
	sub, err := mqtt.NewSubscriber(ctx, cfg, mqtt.SubscriberOptions{Topics: []string{mqtt.TopicLatencyAll}}, func(topic string, payload []byte) {
		src.Handle(topic, payload)
		got.Add(1)
		select {
		case arrived <- struct{}{}:
		default:
		}
	}, prometheus.NewRegistry(), o.Log)
	if err != nil {
		return fmt.Errorf("subscriber: %w", err)
	}
	defer func() { _ = sub.Close(context.Background()) }()
	select {
	case <-sub.Ready():
	case <-time.After(30 * time.Second):
		return fmt.Errorf("ingest: the subscriber never subscribed")
	}
	probers := make([]*mqtt.Publisher, res.Nodes)
	for k := range probers {
		p, err := mqtt.NewPublisher(ctx, cfg, mqtt.PublisherOptions{}, prometheus.NewRegistry(), o.Log)
		if err != nil {
			return fmt.Errorf("publisher %d: %w", k, err)
		}
		defer func() { _ = p.Close(context.Background()) }()
		probers[k] = p
	}
	// want waits until n reports in all have reached the source.
	// It gives up when none arrives for stall.
	const stall = 20 * time.Second
	want := func(n int64) error {
		for got.Load() < n {
			select {
			case <-arrived:
			case <-time.After(stall):
				info := b.Server().Info
				return fmt.Errorf("ingest: %d of %d reports arrived, then none for %v (broker: %d messages dropped, %d in flight dropped)",
					got.Load(), n, stall, atomic.LoadInt64(&info.MessagesDropped), atomic.LoadInt64(&info.InflightDropped))
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	publish := func(round int) error {
		for k, p := range probers {
			if err := p.PublishLatency(probeReport(o, k/o.NodesPerSite, k%o.NodesPerSite, time.Now(), round)); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
		}
		return nil
	}
	// A warm-up round connects every prober; the timed rounds follow.
	if err := publish(0); err != nil {
		return err
	}
	if err := want(int64(len(probers))); err != nil {
		return err
	}
	// Each round waits for the one before, as probers on an interval do: the
	// broker keeps at most 1,024 QoS 1 messages in flight to the subscriber
	// (broker.maxInflight) and drops the rest, so rounds sent all at once
	// lose reports beyond that.
	start := time.Now()
	for round := 1; round <= o.Rounds; round++ {
		if err := publish(round); err != nil {
			return err
		}
		if err := want(int64(len(probers) * (round + 1))); err != nil {
			return err
		}
	}
	elapsed := time.Since(start)
	res.Reports = len(probers) * o.Rounds
	res.ReportsPerSecond = float64(res.Reports) / elapsed.Seconds()
	if n := len(store.Sites()); n != o.Sites {
		return fmt.Errorf("ingest: through the broker the store holds %d sites, want %d (reports rejected)", n, o.Sites)
	}
	return nil
}

// IngestSites are the sizes the report and the benchmark measure.
var IngestSites = []int{50, 100, 500}
