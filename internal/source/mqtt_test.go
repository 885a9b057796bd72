package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	clocktesting "k8s.io/utils/clock/testing"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/broker"
	"github.com/ning-edge/ning/internal/broker/brokertest"
	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/topology"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func goodReport() *ningv1.LatencyReport {
	return &ningv1.LatencyReport{
		SourceSite: "dallas", SourceNode: "d-1", Time: timestamppb.New(now.Add(-time.Second)), Started: timestamppb.New(now.Add(-3 * time.Second)),
		Method: ningv1.ProbeMethod_PROBE_METHOD_ICMP_RAW,
		Targets: []*ningv1.TargetResult{{
			Site: "toronto", Node: "t-1", Address: "10.0.0.2", Sent: 3, Received: 3,
			RttMs: []float64{30, 34, 38}, MinMs: 30, AvgMs: 34, MaxMs: 38, StddevMs: 3.27, P50Ms: 34, P99Ms: 38,
		}},
		Load: &ningv1.NodeLoad{CpuUtilisation: 0.4, Cpu: &ningv1.Pressure{SomeAvg10: 1.5}},
	}
}

func newSource(t *testing.T, cfg Config) (*MQTT, *topology.Store, *prometheus.Registry) {
	t.Helper()
	clk := clocktesting.NewFakeClock(now)
	store := topology.NewStore(topology.Config{}, clk)
	reg := prometheus.NewRegistry()
	s, err := NewMQTT(store, cfg, clk, reg, discard())
	if err != nil {
		t.Fatal(err)
	}
	return s, store, reg
}

func marshal(t testing.TB, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandleLatency(t *testing.T) {
	tests := []struct {
		name       string
		topic      string
		mutate     func(*ningv1.LatencyReport)
		raw        []byte
		cfg        Config
		wantReason string // empty: accepted
	}{
		{name: "valid"},
		{name: "valid with allow-list", cfg: Config{AllowedSites: []string{"dallas", "toronto"}}},
		{name: "all probes lost is loss, not an error", mutate: func(r *ningv1.LatencyReport) {
			r.Targets[0] = &ningv1.TargetResult{Site: "toronto", Sent: 5}
		}},
		{name: "undecodable", raw: []byte{0xff, 0xff, 0xff}, wantReason: ReasonUndecodable},
		{name: "too large", raw: make([]byte, 2<<20), wantReason: ReasonTooLarge},
		{name: "topic and source disagree", topic: "ning/v1/latency/toronto", wantReason: ReasonTopicMismatch},
		{name: "foreign topic", topic: "other/topic", wantReason: ReasonUnknownTopic},
		{name: "unknown source site", cfg: Config{AllowedSites: []string{"toronto"}}, wantReason: ReasonUnknownSite},
		{name: "unknown target site", cfg: Config{AllowedSites: []string{"dallas"}}, wantReason: ReasonUnknownSite},
		{name: "empty target site", mutate: func(r *ningv1.LatencyReport) { r.Targets[0].Site = "" }, wantReason: topology.ReasonBadSite},
		{name: "negative RTT", mutate: func(r *ningv1.LatencyReport) { r.Targets[0].AvgMs = -1 }, wantReason: topology.ReasonBadRTT},
		{name: "NaN RTT sample", mutate: func(r *ningv1.LatencyReport) { r.Targets[0].RttMs[1] = math.NaN() }, wantReason: topology.ReasonBadRTT},
		{name: "infinite p99", mutate: func(r *ningv1.LatencyReport) { r.Targets[0].P99Ms = math.Inf(1) }, wantReason: topology.ReasonBadRTT},
		{name: "absurd RTT", mutate: func(r *ningv1.LatencyReport) { r.Targets[0].MaxMs = 3_600_000 }, wantReason: topology.ReasonBadRTT},
		{name: "samples do not match replies", mutate: func(r *ningv1.LatencyReport) { r.Targets[0].Received = 2 }, wantReason: topology.ReasonBadRTT},
		{name: "more replies than probes", mutate: func(r *ningv1.LatencyReport) { r.Targets[0].Sent = 2 }, wantReason: topology.ReasonBadLoss},
		{name: "nothing sent", mutate: func(r *ningv1.LatencyReport) {
			r.Targets[0].Sent, r.Targets[0].Received, r.Targets[0].RttMs = 0, 0, nil
		}, wantReason: topology.ReasonBadLoss},
		{name: "future timestamp", mutate: func(r *ningv1.LatencyReport) { r.Time = timestamppb.New(now.Add(time.Hour)) }, wantReason: topology.ReasonFutureTS},
		{name: "missing timestamp", mutate: func(r *ningv1.LatencyReport) { r.Time = nil }, wantReason: topology.ReasonMissingTS},
		{name: "invalid timestamp", mutate: func(r *ningv1.LatencyReport) { r.Time = &timestamppb.Timestamp{Nanos: -1} }, wantReason: topology.ReasonMissingTS},
		{name: "no start time (a prober before it)", mutate: func(r *ningv1.LatencyReport) { r.Started = nil }},
		{name: "started after it finished", mutate: func(r *ningv1.LatencyReport) { r.Started = timestamppb.New(now) }, wantReason: topology.ReasonBadTS},
		{name: "invalid start time", mutate: func(r *ningv1.LatencyReport) { r.Started = &timestamppb.Timestamp{Nanos: -1} }, wantReason: topology.ReasonMissingTS},
		{name: "CPU above 1", mutate: func(r *ningv1.LatencyReport) { r.Load.CpuUtilisation = 1.5 }, wantReason: topology.ReasonBadLoad},
		{name: "NaN PSI", mutate: func(r *ningv1.LatencyReport) { r.Load.Io = &ningv1.Pressure{FullAvg10: math.NaN()} }, wantReason: topology.ReasonBadLoad},
		{name: "load without node", mutate: func(r *ningv1.LatencyReport) { r.SourceNode = "" }, wantReason: topology.ReasonBadLoad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, store, _ := newSource(t, tt.cfg)
			r := goodReport()
			if tt.mutate != nil {
				tt.mutate(r)
			}
			payload := tt.raw
			if payload == nil {
				payload = marshal(t, r)
			}
			topic := tt.topic
			if topic == "" {
				topic = "ning/v1/latency/dallas"
			}
			s.Handle(topic, payload)
			_, linked := store.Link("dallas", "toronto")
			if tt.wantReason == "" {
				if !linked {
					t.Fatal("valid report did not reach the store")
				}
				if got := testutil.ToFloat64(s.accepted.WithLabelValues("latency")); got != 1 {
					t.Errorf("accepted = %v", got)
				}
				// The reporter is heard at the round's end, the target
				// when the probes went out.
				reached := r.GetTime().AsTime()
				if r.GetStarted() != nil && r.GetTargets()[0].GetReceived() > 0 {
					reached = r.GetStarted().AsTime()
				}
				if got := store.LastHeard("dallas"); !got.Equal(r.GetTime().AsTime()) {
					t.Errorf("LastHeard(dallas) = %v, want the report's time %v", got, r.GetTime().AsTime())
				}
				if got, want := store.LastHeard("toronto"), reached; r.GetTargets()[0].GetReceived() > 0 && !got.Equal(want) {
					t.Errorf("LastHeard(toronto) = %v, want %v", got, want)
				}
				return
			}
			if linked || store.Version() != 0 {
				t.Error("rejected report changed the store")
			}
			if got := testutil.ToFloat64(s.rejected.WithLabelValues(tt.wantReason)); got != 1 {
				t.Errorf("ning_reports_rejected_total{reason=%q} = %v, want 1", tt.wantReason, got)
			}
		})
	}
}

func TestHandleTraffic(t *testing.T) {
	good := func() *ningv1.TrafficReport {
		return &ningv1.TrafficReport{Source: "prometheus", Time: timestamppb.New(now), WindowSeconds: 60,
			Sites: []*ningv1.SiteTraffic{{Site: "dallas", RequestsPerSecond: 120}, {Site: "toronto", RequestsPerSecond: 3}}}
	}
	tests := []struct {
		name       string
		mutate     func(*ningv1.TrafficReport)
		wantReason string
	}{
		{name: "valid"},
		{name: "negative rate", mutate: func(r *ningv1.TrafficReport) { r.Sites[1].RequestsPerSecond = -1 }, wantReason: topology.ReasonBadRate},
		{name: "NaN window", mutate: func(r *ningv1.TrafficReport) { r.WindowSeconds = math.NaN() }, wantReason: topology.ReasonBadRate},
		{name: "future", mutate: func(r *ningv1.TrafficReport) { r.Time = timestamppb.New(now.Add(time.Minute)) }, wantReason: topology.ReasonFutureTS},
		{name: "empty site", mutate: func(r *ningv1.TrafficReport) { r.Sites[0].Site = "" }, wantReason: topology.ReasonBadSite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, store, _ := newSource(t, Config{})
			r := good()
			if tt.mutate != nil {
				tt.mutate(r)
			}
			s.Handle(mqtt.TopicTraffic, marshal(t, r))
			got := store.Traffic()
			if tt.wantReason == "" {
				if got["dallas"] != 120 || got["toronto"] != 3 {
					t.Errorf("traffic %v", got)
				}
				return
			}
			if len(got) != 0 {
				t.Errorf("rejected report stored traffic %v", got)
			}
			if n := testutil.ToFloat64(s.rejected.WithLabelValues(tt.wantReason)); n != 1 {
				t.Errorf("rejected{%s} = %v", tt.wantReason, n)
			}
		})
	}
}

func FuzzDecodeLatencyReport(f *testing.F) {
	f.Add(marshal(f, goodReport()))
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x80})
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := DecodeLatencyReport(payload, DefaultMaxPayload)
		if err != nil {
			var re *topology.RejectError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a RejectError", err)
			}
			return
		}
		s, store, _ := newSource(t, Config{})
		obs, err := s.Validate(r)
		if err != nil {
			return
		}
		for _, m := range obs.RTT {
			if m.Received > 0 && (math.IsNaN(m.MeanMs) || m.MeanMs < 0 || m.MeanMs > topology.MaxRTTMs) {
				t.Fatalf("validated RTT %v", m.MeanMs)
			}
		}
		// A validated report must be storable, and stored: every target
		// that answered has an RTT in the store afterwards.
		if err := s.handle(mqtt.TopicLatencyPrefix+r.GetSourceSite(), payload); err != nil {
			t.Fatalf("validated report refused by the store: %v", err)
		}
		for _, m := range obs.RTT {
			if _, ok := store.Link(m.From, m.To); !ok {
				t.Fatalf("validated sample %s -> %s not stored", m.From, m.To)
			}
		}
	})
}

// TestMQTTSourceEndToEnd publishes through a broker (embedded, or the one in
// NING_MQTT_URL) and measures publish-to-store latency.
func TestMQTTSourceEndToEnd(t *testing.T) {
	url := os.Getenv("NING_MQTT_URL")
	kind := "external (NING_MQTT_URL)"
	if url == "" {
		b := brokertest.Start(t, broker.Config{Listen: "127.0.0.1:0", AllowAnonymous: true}, discard())
		url, kind = "mqtt://"+b.Addr(), "embedded"
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clk := clocktesting.NewFakeClock(time.Now())
	store := topology.NewStore(topology.Config{}, clk)
	src, err := NewMQTT(store, Config{}, clk, prometheus.NewRegistry(), discard())
	if err != nil {
		t.Fatal(err)
	}
	stored := make(chan time.Time, 16)
	src.onStored = func(string) { stored <- time.Now() }
	site := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	sub, err := mqtt.NewSubscriber(ctx, mqtt.Config{BrokerURL: url}, mqtt.SubscriberOptions{Topics: []string{mqtt.TopicLatencyPrefix + site}},
		src.Handle, prometheus.NewRegistry(), discard())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(context.Background())
	select {
	case <-sub.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("subscriber never subscribed")
	}
	pub, err := mqtt.NewPublisher(ctx, mqtt.Config{BrokerURL: url}, mqtt.PublisherOptions{}, prometheus.NewRegistry(), discard())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	const n = 200
	var lat []time.Duration
	for i := range n {
		r := goodReport()
		r.SourceSite = site
		r.Time = timestamppb.New(clk.Now())
		r.Targets[0].AvgMs = float64(10 + i%5)
		sent := time.Now()
		if err := pub.PublishLatency(r); err != nil {
			t.Fatal(err)
		}
		select {
		case at := <-stored:
			lat = append(lat, at.Sub(sent))
		case <-time.After(5 * time.Second):
			t.Fatalf("report %d never reached the store", i)
		}
	}
	if _, ok := store.RTT(site, "toronto"); !ok {
		t.Fatal("no RTT in the store")
	}
	slices.Sort(lat)
	t.Logf("publish-to-store latency through the %s broker over %d reports: p50 %v p99 %v max %v",
		kind, n, lat[n/2], lat[n*99/100], lat[n-1])
}

// FuzzHandleMQTT feeds any topic and payload to the MQTT source, as a broker
// would: TrafficReports as well as LatencyReports. Whatever arrives, nothing
// panics, and a message is either stored or counted as rejected.
func FuzzHandleMQTT(f *testing.F) {
	f.Add(mqtt.TopicLatencyPrefix+"dallas", marshal(f, goodReport()))
	f.Add(mqtt.TopicTraffic, marshal(f, &ningv1.TrafficReport{Source: "prometheus", Time: timestamppb.New(now), WindowSeconds: 60,
		Sites: []*ningv1.SiteTraffic{{Site: "dallas", RequestsPerSecond: 120}}}))
	f.Add(mqtt.TopicTraffic, []byte{0x12, 0x80})
	f.Add("ning/v1/latency/", []byte{})
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		s, _, reg := newSource(t, Config{})
		s.Handle(topic, payload)
		var total float64
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
		if total != 1 {
			t.Fatalf("one message counted %v times (accepted + rejected)", total)
		}
	})
}
