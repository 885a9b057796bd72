package source

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/utils/clock"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/broker"
	"github.com/ning-edge/ning/internal/broker/brokertest"
	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/topology"
)

// counter reads one counter from a registry, as /metrics would show it; a
// series that was never incremented reads 0.
func counter(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return metricValue(m)
		}
	}
	return 0
}

func metricValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}

// pipeline is the real receiving path: an embedded broker, the real
// subscriber, the MQTT source and a store, with the source's metrics in reg.
type pipeline struct {
	broker *broker.Broker
	store  *topology.Store
	reg    *prometheus.Registry
	sub    *mqtt.Subscriber
}

func newPipeline(t *testing.T, cfg Config) *pipeline {
	t.Helper()
	b := brokertest.Start(t, broker.Config{Listen: "127.0.0.1:0", AllowAnonymous: true}, discard())
	p := &pipeline{broker: b, reg: prometheus.NewRegistry()}
	p.store = topology.NewStore(topology.Config{}, clock.RealClock{})
	src, err := NewMQTT(p.store, cfg, clock.RealClock{}, p.reg, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.sub, err = mqtt.NewSubscriber(ctx, mqtt.Config{BrokerURL: "mqtt://" + b.Addr()}, mqtt.SubscriberOptions{}, src.Handle, p.reg, discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.sub.Close(context.Background())
		cancel()
	})
	select {
	case <-p.sub.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("subscriber never subscribed")
	}
	return p
}

// rawClient is an MQTT client that publishes whatever bytes it is given: the
// hostile publisher.
func rawClient(t *testing.T, addr, id string) *paho.Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if ca, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}); err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connecting %s: %v", id, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

func validReport(site string, rtt float64, at time.Time) *ningv1.LatencyReport {
	return &ningv1.LatencyReport{
		SourceSite: site, SourceNode: site + "-1", Time: timestamppb.New(at),
		Targets: []*ningv1.TargetResult{{Site: "hub", Sent: 4, Received: 4, RttMs: []float64{rtt, rtt, rtt, rtt},
			MinMs: rtt, AvgMs: rtt, MaxMs: rtt, P50Ms: rtt, P99Ms: rtt}},
	}
}

// heapSampler records the largest heap in use while it runs.
type heapSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	done sync.WaitGroup
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stop: make(chan struct{})}
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > h.peak.Load() {
				h.peak.Store(ms.HeapInuse)
			}
			select {
			case <-h.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return h
}

func (h *heapSampler) Stop() uint64 { close(h.stop); h.done.Wait(); return h.peak.Load() }

func heapNow() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestMQTTFlood floods the latency and traffic topics of a real broker with
// garbage and oversized payloads at QoS 0 and 1, with valid reports
// interleaved: every valid report lands in the store with its exact RTT,
// every bad one is counted in ning_reports_rejected_total, packets over the
// broker's limit are refused at the door and never reach the subscriber, and
// the heap stays bounded.
func TestMQTTFlood(t *testing.T) {
	p := newPipeline(t, Config{})
	flooder := rawClient(t, p.broker.Addr(), "flooder")
	ctx := t.Context()

	const (
		rounds    = 100
		perRound  = 50 // garbage messages per round
		oversized = 3*mqtt.DefaultMaxPacketSize/4 + DefaultMaxPayload/4
	)
	garbage := [][]byte{
		{0xff, 0xff, 0xff},                  // field 31, wire type 7: invalid
		{0x0a, 0x80},                        // a length that runs past the end
		bytes.Repeat([]byte{0x0a, 0x7f}, 8), // nested lengths past the end
		{0x08},                              // a tag without its value
	}
	truncated := marshal(t, validReport("v", 1, time.Now()))
	garbage = append(garbage, truncated[:len(truncated)-3])
	big := bytes.Repeat([]byte{0x42}, oversized) // over the source's 1 MiB, under the broker's 2 MiB

	base := heapNow()
	heap := sampleHeap()
	start := time.Now()
	sentGarbage, sentBig, sentValid := 0, 0, 0
	var valid []string
	for r := range rounds {
		for i := range perRound {
			topic := fmt.Sprintf("ning/v1/latency/g%d", i%7)
			if i%5 == 0 {
				topic = mqtt.TopicTraffic
			}
			if _, err := flooder.Publish(ctx, &paho.Publish{Topic: topic, QoS: byte(i % 2), Payload: garbage[(r+i)%len(garbage)]}); err != nil {
				t.Fatal(err)
			}
			sentGarbage++
		}
		if _, err := flooder.Publish(ctx, &paho.Publish{Topic: "ning/v1/latency/big", QoS: 1, Payload: big}); err != nil {
			t.Fatal(err)
		}
		sentBig++
		site := fmt.Sprintf("v%d", r)
		if _, err := flooder.Publish(ctx, &paho.Publish{Topic: mqtt.TopicLatencyPrefix + site, QoS: 1,
			Payload: marshal(t, validReport(site, float64(r+1), time.Now()))}); err != nil {
			t.Fatal(err)
		}
		valid = append(valid, site)
		sentValid++
	}
	wantRejected := float64(sentGarbage + sentBig)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got := counter(t, p.reg, "ning_reports_rejected_total", nil)
		acc := counter(t, p.reg, "ning_reports_accepted_total", nil)
		if sumRejected(t, p.reg) >= wantRejected && acc >= float64(sentValid) {
			break
		}
		if time.Now().After(deadline) {
			in := p.broker.Server().Info
			t.Fatalf("after 30 s: %v rejected (first series %v), %v accepted; want %v and %d; broker: received %d sent %d dropped %d inflight %d inflight dropped %d", sumRejected(t, p.reg), got, acc, wantRejected, sentValid,
				in.MessagesReceived, in.MessagesSent, in.MessagesDropped, in.Inflight, in.InflightDropped)
		}
	}
	elapsed := time.Since(start)
	peak := heap.Stop()

	// Over the broker's limit: refused, the sender disconnected, nothing delivered.
	huge := rawClient(t, p.broker.Addr(), "huge")
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	received := counter(t, p.reg, "ning_mqtt_received_total", nil)
	if _, err := huge.Publish(hctx, &paho.Publish{Topic: "ning/v1/latency/huge", QoS: 1, Payload: make([]byte, 4*mqtt.DefaultMaxPacketSize)}); err == nil {
		t.Error("the broker acknowledged a packet over its size limit")
	}
	time.Sleep(200 * time.Millisecond)
	if got := counter(t, p.reg, "ning_mqtt_received_total", nil); got != received {
		t.Errorf("a packet over the broker's limit reached the subscriber (%v -> %v messages)", received, got)
	}

	for i, site := range valid {
		got, ok := p.store.RTT(site, "hub")
		if !ok || got != float64(i+1) {
			t.Errorf("valid report from %s: RTT %v (known %v), want %d", site, got, ok, i+1)
		}
	}
	for _, site := range []string{"g0", "g1", "big"} {
		if _, ok := p.store.RTT(site, "hub"); ok {
			t.Errorf("garbage from %s reached the store", site)
		}
	}
	if tr := p.store.Traffic(); len(tr) != 0 {
		t.Errorf("garbage on the traffic topic stored %v", tr)
	}
	tooLarge := counter(t, p.reg, "ning_reports_rejected_total", map[string]string{"reason": ReasonTooLarge})
	if tooLarge != float64(sentBig) {
		t.Errorf("too_large = %v, want %d", tooLarge, sentBig)
	}
	const heapBound = 96 << 20
	growth := int64(peak) - int64(base)
	t.Logf("flood: %d garbage, %d payloads of %.1f MiB (%.0f MiB in all), %d valid in %v; rejected %v (too_large %v, undecodable %v, missing_timestamp %v), accepted %v; heap peak %+.1f MiB over the %.1f MiB before",
		sentGarbage, sentBig, float64(oversized)/(1<<20), float64(sentBig*oversized)/(1<<20), sentValid, elapsed.Round(time.Millisecond),
		sumRejected(t, p.reg), tooLarge, counter(t, p.reg, "ning_reports_rejected_total", map[string]string{"reason": ReasonUndecodable}),
		counter(t, p.reg, "ning_reports_rejected_total", map[string]string{"reason": topology.ReasonMissingTS}),
		counter(t, p.reg, "ning_reports_accepted_total", nil), float64(growth)/(1<<20), float64(base)/(1<<20))
	if growth > heapBound {
		t.Errorf("heap grew by %.0f MiB during the flood, bound %d MiB", float64(growth)/(1<<20), heapBound>>20)
	}
}

func sumRejected(t *testing.T, g prometheus.Gatherer) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "ning_reports_rejected_total" {
			for _, m := range mf.GetMetric() {
				sum += metricValue(m)
			}
		}
	}
	return sum
}

// TestClockSkewThroughMQTT sends reports stamped by a prober whose clock is
// off, through a real broker and subscriber: a few seconds either way is
// accepted, far in the future is rejected and counted.
func TestClockSkewThroughMQTT(t *testing.T) {
	p := newPipeline(t, Config{})
	pub, err := mqtt.NewPublisher(t.Context(), mqtt.Config{BrokerURL: "mqtt://" + p.broker.Addr()}, mqtt.PublisherOptions{}, prometheus.NewRegistry(), discard())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	tests := []struct {
		site   string
		skew   time.Duration
		accept bool
	}{
		{"behind-5s", -5 * time.Second, true},
		{"behind-90s", -90 * time.Second, true}, // older, still inside the 2 min TTL
		{"ahead-3s", 3 * time.Second, true},
		{"ahead-8s", 8 * time.Second, true},
		{"ahead-30s", 30 * time.Second, false},
		{"ahead-1h", time.Hour, false},
		{"ahead-10y", 10 * 365 * 24 * time.Hour, false},
	}
	rejected := 0
	for i, tt := range tests {
		if err := pub.PublishLatency(validReport(tt.site, float64(i+1), time.Now().Add(tt.skew))); err != nil {
			t.Fatal(err)
		}
		if !tt.accept {
			rejected++
		}
	}
	fctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := pub.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	future := map[string]string{"reason": topology.ReasonFutureTS}
	for deadline := time.Now().Add(10 * time.Second); counter(t, p.reg, "ning_reports_rejected_total", future)+
		counter(t, p.reg, "ning_reports_accepted_total", nil) < float64(len(tests)); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not every report arrived")
		}
	}
	for i, tt := range tests {
		got, ok := p.store.RTT(tt.site, "hub")
		if ok != tt.accept || (ok && got != float64(i+1)) {
			t.Errorf("%s: RTT %v known %v, want known %v", tt.site, got, ok, tt.accept)
		}
	}
	if got := counter(t, p.reg, "ning_reports_rejected_total", future); got != float64(rejected) {
		t.Errorf("future_timestamp rejections = %v, want %d", got, rejected)
	}
	if got := sumRejected(t, p.reg); got != float64(rejected) {
		t.Errorf("%v rejections in all, want %d", got, rejected)
	}
}
