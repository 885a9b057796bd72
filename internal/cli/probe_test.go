package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"k8s.io/utils/clock"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/broker"
	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/source"
	"github.com/ning-edge/ning/internal/topology"
)

func udpEcho(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], addr)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestProbeOnceJSON(t *testing.T) {
	port := udpEcho(t)
	var out bytes.Buffer
	o := probeOptions{site: "home", node: "n1", targets: []string{"lo/lo-1=127.0.0.1:" + strconv.Itoa(port)},
		count: 3, interval: 10 * time.Millisecond, timeout: 200 * time.Millisecond, methods: "udp",
		once: true, output: "json", period: time.Second, procRoot: "/proc", logLevel: "error"}
	if err := runProbe(t.Context(), &out, o); err != nil {
		t.Fatal(err)
	}
	var r ningv1.LatencyReport
	if err := protojson.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("output is not protojson of LatencyReport: %v\n%s", err, out.String())
	}
	if r.GetSourceSite() != "home" || len(r.GetTargets()) != 1 || r.GetTargets()[0].GetReceived() != 3 ||
		r.GetMethod() != ningv1.ProbeMethod_PROBE_METHOD_UDP_ECHO {
		t.Errorf("report %v", &r)
	}
}

func TestProbeFlagErrors(t *testing.T) {
	base := probeOptions{site: "home", targets: []string{"a=127.0.0.1"}, count: 1, interval: time.Millisecond,
		timeout: time.Millisecond, methods: "udp", once: true, output: "json", period: time.Second, logLevel: "info"}
	tests := []struct {
		name   string
		mutate func(*probeOptions)
	}{
		{"no targets", func(o *probeOptions) { o.targets = nil }},
		{"bad target", func(o *probeOptions) { o.targets = []string{"nope"} }},
		{"bad method", func(o *probeOptions) { o.methods = "smoke" }},
		{"bad site", func(o *probeOptions) { o.site = "a/b" }},
		{"bad output", func(o *probeOptions) { o.output = "yaml" }},
		{"bad jitter", func(o *probeOptions) { o.jitter = 2 }},
		{"bad log level", func(o *probeOptions) { o.logLevel = "loud" }},
		{"missing targets file", func(o *probeOptions) { o.targetsFile = filepath.Join(t.TempDir(), "none") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.mutate(&o)
			if err := runProbe(t.Context(), io.Discard, o); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// TestProbeBrokerEndToEnd runs `ning broker` and periodic `ning probe` as the
// commands do, and checks reports reach a topology store through the MQTT source.
func TestProbeBrokerEndToEnd(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addr := freeAddr(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte("probe@home:s3cret\nscheduler:pw2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	brokerDone := make(chan error, 1)
	go func() {
		brokerDone <- runBroker(ctx, brokerOptions{listen: addr, usersFile: filepath.Join(dir, "users"), logLevel: "error"})
	}()
	port := udpEcho(t)
	metricsAddr := freeAddr(t)
	probeDone := make(chan error, 1)
	go func() {
		probeDone <- runProbe(ctx, io.Discard, probeOptions{
			site: "home", node: "n1", targets: []string{"lo/lo-1=127.0.0.1:" + strconv.Itoa(port)},
			count: 3, interval: 10 * time.Millisecond, timeout: 200 * time.Millisecond, methods: "udp",
			period: 100 * time.Millisecond, jitter: 0.2, listen: metricsAddr, procRoot: "/proc", queueSize: 10, logLevel: "error",
			mqtt: mqttFlags{url: "mqtt://" + addr, username: "probe@home", passwordFile: filepath.Join(dir, "pw")},
		})
	}()

	store := topology.NewStore(topology.Config{}, clock.RealClock{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	src, err := source.NewMQTT(store, source.Config{AllowedSites: []string{"home", "lo"}}, clock.RealClock{}, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := mqtt.NewSubscriber(ctx, mqtt.Config{BrokerURL: "mqtt://" + addr, Username: "scheduler", Password: "pw2", MinBackoff: 20 * time.Millisecond},
		mqtt.SubscriberOptions{}, src.Handle, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if rtt, ok := store.RTT("home", "lo"); ok {
			t.Logf("store has home -> lo = %.3f ms", rtt)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no report reached the store")
		}
		select {
		case err := <-probeDone:
			t.Fatalf("probe stopped: %v", err)
		default:
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok := store.Load("n1"); !ok {
		t.Error("node load not stored")
	}
	for _, path := range []string{"/healthz", "/scores", "/metrics"} {
		code, err := get(ctx, "http://"+metricsAddr+path)
		if err != nil || code != 200 {
			t.Errorf("%s: %d %v", path, code, err)
		}
	}
	_ = sub.Close(ctx)
	cancel()
	waitStopped(t, probeDone, brokerDone)
}

// TestProbeOncePublish is the Job mode: one round, printed and published,
// flushed before exit.
func TestProbeOncePublish(t *testing.T) {
	b, err := broker.New(broker.Config{Listen: "127.0.0.1:0", AllowAnonymous: true, Inline: true}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	if err := b.Server().Subscribe(mqtt.TopicLatencyPrefix+"home", 1, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		got <- pk.Payload
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	port := udpEcho(t)
	o := probeOptions{site: "home", node: "n1", targets: []string{"lo=127.0.0.1:" + strconv.Itoa(port)},
		count: 2, interval: 10 * time.Millisecond, timeout: 200 * time.Millisecond, methods: "udp",
		once: true, publish: true, output: "json", period: time.Second, procRoot: "/proc", logLevel: "error",
		queueSize: 10, mqtt: mqttFlags{url: "mqtt://" + b.Addr()}}
	if err := runProbe(t.Context(), io.Discard, o); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		var r ningv1.LatencyReport
		if err := proto.Unmarshal(p, &r); err != nil || r.GetTargets()[0].GetReceived() != 2 {
			t.Errorf("published report %v (%v)", &r, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("report not published")
	}
}
