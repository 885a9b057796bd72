package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	clocktesting "k8s.io/utils/clock/testing"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/logging/logtest"
	"github.com/ning-edge/ning/internal/mqtt/topics"
)

// session is one real paho MQTT 5 client on a test broker.
type session struct {
	c      *paho.Client
	ack    *paho.Connack
	mu     sync.Mutex
	topics map[string][]byte // last payload per topic received
	got    chan string
}

// dial connects user (password pass, client ID id) and returns the session
// and its CONNACK reason code (non-zero: refused, the session is closed).
func dial(t *testing.T, addr, id, user, pass string) (*session, byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &session{topics: map[string][]byte{}, got: make(chan string, 1024)}
	s.c = paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			s.mu.Lock()
			s.topics[pr.Packet.Topic] = pr.Packet.Payload
			s.mu.Unlock()
			select {
			case s.got <- pr.Packet.Topic:
			default:
			}
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	expiry := uint32(600)
	cp := &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: false, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}
	if user != "" {
		cp.Username, cp.UsernameFlag, cp.Password, cp.PasswordFlag = user, true, []byte(pass), true
	}
	ca, err := s.c.Connect(ctx, cp)
	if ca == nil {
		t.Fatalf("connect %s as %s: %v", id, user, err)
	}
	s.ack = ca
	if ca.ReasonCode == 0 {
		t.Cleanup(func() { _ = s.c.Disconnect(&paho.Disconnect{}) })
	}
	return s, ca.ReasonCode
}

// publish sends a retained QoS 1 message and returns the PUBACK reason code.
func (s *session) publish(t *testing.T, topic string, payload []byte) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	pr, err := s.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: payload})
	if pr == nil {
		t.Fatalf("publish on %s: %v", topic, err)
	}
	return pr.ReasonCode
}

func (s *session) subscribe(t *testing.T, filter string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	sa, err := s.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if sa == nil || len(sa.Reasons) != 1 {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	return sa.Reasons[0]
}

func (s *session) payload(topic string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.topics[topic]
	return p, ok
}

func latencyReport(t *testing.T, from, node, to string, ms, cpu float64) []byte {
	t.Helper()
	b, err := proto.Marshal(&ningv1.LatencyReport{SourceSite: from, SourceNode: node, Time: timestamppb.Now(),
		Targets: []*ningv1.TargetResult{{Site: to, Sent: 5, Received: 5, AvgMs: ms, MinMs: ms, MaxMs: ms, P50Ms: ms, P99Ms: ms}},
		Load:    &ningv1.NodeLoad{CpuUtilisation: cpu}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The reason codes a refused client sees.
const (
	codeOK              = 0x00
	codeGrantedQoS1     = 0x01
	codeClientIDInvalid = 0x85
	codeBadCredentials  = 0x86
	codeNotAuthorized   = 0x87
	codeQuotaExceeded   = 0x97
)

// TestForgedReportsRefused plays issue 18's attack with prober b's
// credential: a forged a -> c RTT of 0.001 ms on site a's topic, a forged
// 99 % CPU for a node of site a, and a forged traffic report. The broker
// refuses each with "not authorised", the scheduler receives none, and
// none is retained, not even across a restart of the broker on its store.
func TestForgedReportsRefused(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	cfg := Config{Listen: "127.0.0.1:0", IdentityKey: key, DataDir: dir, Registerer: reg}
	b, err := New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	pw := func(id string) string { return DerivedPassword(key, id) }

	sched, code := dial(t, addr, "ning-scheduler", "scheduler", pw("scheduler"))
	if code != codeOK {
		t.Fatalf("scheduler refused: %#x", code)
	}
	if c := sched.subscribe(t, "ning/v1/#"); c != codeGrantedQoS1 {
		t.Fatalf("scheduler's subscription: %#x", c)
	}
	probeB, code := dial(t, addr, "ning-probe-b", "probe@b", pw("probe@b"))
	if code != codeOK {
		t.Fatalf("prober b refused: %#x", code)
	}
	disc, code := dial(t, addr, "ning-discover", "discover", pw("discover"))
	if code != codeOK {
		t.Fatalf("discovery refused: %#x", code)
	}
	traffic, _ := proto.Marshal(&ningv1.TrafficReport{Source: "otlp", Time: timestamppb.Now(), Sites: []*ningv1.SiteTraffic{{Site: "b", RequestsPerSecond: 49927}}})

	tests := []struct {
		name    string
		s       *session
		topic   string
		payload []byte
		want    byte
	}{
		{"b forges a -> c 0.001 ms", probeB, "ning/v1/latency/a", latencyReport(t, "a", "a-1", "c", 0.001, 0.1), codeNotAuthorized},
		{"b forges 99% CPU of a node of a", probeB, "ning/v1/latency/a", latencyReport(t, "a", "a-1", "b", 10, 0.99), codeNotAuthorized},
		{"b forges traffic", probeB, topics.Traffic, traffic, codeNotAuthorized},
		{"b forges on a topic outside ning's", probeB, "other/topic", []byte("x"), codeNotAuthorized},
		{"the scheduler publishes", sched, "ning/v1/latency/b", latencyReport(t, "b", "b-1", "c", 1, 0.1), codeNotAuthorized},
		{"discovery publishes latency", disc, "ning/v1/latency/b", latencyReport(t, "b", "b-1", "c", 1, 0.1), codeNotAuthorized},
		{"b reports its own site", probeB, "ning/v1/latency/b", latencyReport(t, "b", "b-1", "c", 30, 0.2), codeOK},
		{"discovery reports traffic", disc, topics.Traffic, traffic, codeOK},
	}
	for _, tt := range tests {
		if got := tt.s.publish(t, tt.topic, tt.payload); got != tt.want {
			t.Errorf("%s: PUBACK %#x, want %#x", tt.name, got, tt.want)
		}
	}
	if c := probeB.subscribe(t, "ning/v1/#"); c != codeNotAuthorized {
		t.Errorf("prober b subscribing to ning/v1/#: %#x, want %#x", c, codeNotAuthorized)
	}
	if c := sched.subscribe(t, "#"); c != codeNotAuthorized {
		t.Errorf("scheduler subscribing to #: %#x, want %#x", c, codeNotAuthorized)
	}
	waitFor(t, "the scheduler receives both real reports", func() bool {
		_, l := sched.payload("ning/v1/latency/b")
		_, tr := sched.payload(topics.Traffic)
		return l && tr
	})
	if _, ok := sched.payload("ning/v1/latency/a"); ok {
		t.Error("the scheduler received the forged report on ning/v1/latency/a")
	}
	refused := testutil.ToFloat64(b.refusedCounter(RefusedPublish))
	t.Logf("refused publishes: %v (ning_broker_refused_total{reason=%q}); subscriptions: %v", refused, RefusedPublish, testutil.ToFloat64(b.refusedCounter(RefusedSubscribe)))
	if refused != 6 {
		t.Errorf("ning_broker_refused_total{reason=publish_denied} = %v, want 6", refused)
	}

	// Forgeries do not persist: a restarted broker on the same store holds
	// only what was allowed.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.Registerer = addr, prometheus.NewRegistry()
	b2, err := New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.Start(); err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	var topics []string
	for _, pk := range b2.Server().Topics.Retained.GetAll() {
		if !strings.HasPrefix(pk.TopicName, "$SYS/") {
			topics = append(topics, pk.TopicName)
		}
	}
	if diff := cmp.Diff([]string{"ning/v1/latency/b", "ning/v1/traffic"}, slices.Sorted(slices.Values(topics))); diff != "" {
		t.Errorf("retained after restart (-want +got):\n%s", diff)
	}
}

// TestClientIDTakeover: prober b reuses the scheduler's client ID. The
// broker refuses it (CONNACK 0x85), also after the scheduler went away with
// its session kept, and the scheduler's session keeps working.
func TestClientIDTakeover(t *testing.T) {
	reg := prometheus.NewRegistry()
	b, err := New(Config{Listen: "127.0.0.1:0", Users: map[string]string{"scheduler": "pw1", "probe@b": "pw2"}, Registerer: reg}, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sched, code := dial(t, b.Addr(), "ning-scheduler", "scheduler", "pw1")
	if code != codeOK {
		t.Fatalf("scheduler: %#x", code)
	}
	sched.subscribe(t, "ning/v1/latency/+")
	if _, code := dial(t, b.Addr(), "ning-scheduler", "probe@b", "pw2"); code != codeClientIDInvalid {
		t.Errorf("prober b with the scheduler's client ID: CONNACK %#x, want %#x", code, codeClientIDInvalid)
	}
	probe, code := dial(t, b.Addr(), "ning-probe-b", "probe@b", "pw2")
	if code != codeOK {
		t.Fatalf("prober b: %#x", code)
	}
	if c := probe.publish(t, "ning/v1/latency/b", []byte("r1")); c != codeOK {
		t.Fatalf("prober b's own report: %#x", c)
	}
	select {
	case <-sched.got:
	case <-time.After(5 * time.Second):
		t.Fatal("the scheduler's session stopped receiving after the takeover attempt")
	}
	_ = sched.c.Disconnect(&paho.Disconnect{}) // the session stays (expiry 600 s)
	time.Sleep(100 * time.Millisecond)
	if _, code := dial(t, b.Addr(), "ning-scheduler", "probe@b", "pw2"); code != codeClientIDInvalid {
		t.Errorf("prober b taking the scheduler's kept session: CONNACK %#x, want %#x", code, codeClientIDInvalid)
	}
	if _, code := dial(t, b.Addr(), "ning-scheduler", "scheduler", "pw1"); code != codeOK {
		t.Errorf("the scheduler resuming its own session: CONNACK %#x", code)
	}
	if got := testutil.ToFloat64(b.refusedCounter(RefusedClientIDTaken)); got != 2 {
		t.Errorf("ning_broker_refused_total{reason=client_id_taken} = %v, want 2", got)
	}
}

// TestCredentials: a derived password opens only its own identity, an
// identity the broker does not know is refused, and users must be
// identities.
func TestCredentials(t *testing.T) {
	key := []byte("another key of 32 bytes, at least")
	b, err := New(Config{Listen: "127.0.0.1:0", IdentityKey: key}, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tests := []struct {
		user, pass string
		want       byte
	}{
		{"probe@a", DerivedPassword(key, "probe@a"), codeOK},
		{"probe@a", DerivedPassword(key, "probe@b"), codeBadCredentials},
		{"probe@b", DerivedPassword([]byte("not the broker's key at all"), "probe@b"), codeBadCredentials},
		{"mallory", DerivedPassword(key, "mallory"), codeBadCredentials},
		{"", "", codeBadCredentials},
	}
	for i, tt := range tests {
		if _, got := dial(t, b.Addr(), fmt.Sprintf("c%d", i), tt.user, tt.pass); got != tt.want {
			t.Errorf("%q with password %.8s...: CONNACK %#x, want %#x", tt.user, tt.pass, got, tt.want)
		}
	}
	if _, err := New(Config{Listen: "127.0.0.1:0", Users: map[string]string{"ning": "pw"}}, discard()); err == nil || !strings.Contains(err.Error(), "probe@SITE") {
		t.Errorf("a users file naming no identity: err %v, want one listing the identities", err)
	}
}

// TestRefusalLogPerHost: a client refused over and over, each time from a
// new port, is logged once per interval with the count suppressed since,
// and every refusal is counted.
func TestRefusalLogPerHost(t *testing.T) {
	key := []byte("another key of 32 bytes, at least")
	reg := prometheus.NewRegistry()
	clk := clocktesting.NewFakePassiveClock(time.Unix(1e9, 0))
	var logs logtest.Buffer
	b, err := New(Config{Listen: "127.0.0.1:0", IdentityKey: key, Registerer: reg, Clock: clk}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	refuse := func(n int) {
		for i := range n {
			if _, got := dial(t, b.Addr(), fmt.Sprintf("c%d", i), "probe@a", "not its password"); got != codeBadCredentials {
				t.Fatalf("CONNACK %#x, want %#x", got, codeBadCredentials)
			}
		}
	}
	refuse(5)
	clk.SetTime(clk.Now().Add(refusalLogInterval))
	refuse(1)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(l, "broker refused") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 || !strings.Contains(lines[0], "source=127.0.0.1 ") || !strings.Contains(lines[1], "suppressedSinceLast=4") {
		t.Errorf("refusal logs, want one for 127.0.0.1 and one 10 s later with 4 suppressed:\n%s", strings.Join(lines, "\n"))
	}
	if got := testutil.ToFloat64(b.refusedCounter(RefusedCredentials)); got != 6 {
		t.Errorf("%s{reason=%q} = %v, want 6", refusalMetricName, RefusedCredentials, got)
	}
}

// TestRetainedBounds: retained messages beyond an identity's count and
// bytes, and beyond the broker's, are refused (PUBACK 0x97 quota exceeded);
// replacing one's own message is not growth; an empty one frees its share.
func TestRetainedBounds(t *testing.T) {
	reg := prometheus.NewRegistry()
	b, err := New(Config{Listen: "127.0.0.1:0", Registerer: reg,
		Users:  map[string]string{"admin": "pw", "probe@a": "pa", "probe@b": "pb"},
		Bounds: Bounds{RetainedMessages: 3, RetainedBytes: 1 << 20, RetainedMessagesPerIdentity: 2, RetainedBytesPerIdentity: 600 << 10}}, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	admin, _ := dial(t, b.Addr(), "admin", "admin", "pw")
	pa, _ := dial(t, b.Addr(), "pa", "probe@a", "pa")
	pb, _ := dial(t, b.Addr(), "pb", "probe@b", "pb")
	kb := func(n int) []byte { return make([]byte, n<<10) }
	steps := []struct {
		name  string
		s     *session
		topic string
		size  []byte
		want  byte
	}{
		{"admin's first", admin, "ning/v1/x/1", kb(1), codeOK},
		{"admin's second", admin, "ning/v1/x/2", kb(1), codeOK},
		{"admin's third, over its count", admin, "ning/v1/x/3", kb(1), codeQuotaExceeded},
		{"admin replaces its second", admin, "ning/v1/x/2", kb(2), codeOK},
		{"admin clears its first", admin, "ning/v1/x/1", nil, codeOK},
		{"admin's third, now in bounds", admin, "ning/v1/x/3", kb(1), codeOK},
		{"prober a, over its bytes", pa, "ning/v1/latency/a", kb(700), codeQuotaExceeded},
		{"prober a", pa, "ning/v1/latency/a", kb(500), codeOK},
		{"prober b, over the broker's count", pb, "ning/v1/latency/b", kb(1), codeQuotaExceeded},
		{"prober a shrinks its report", pa, "ning/v1/latency/a", kb(1), codeOK},
		{"prober b still over the broker's count", pb, "ning/v1/latency/b", kb(1), codeQuotaExceeded},
	}
	for _, st := range steps {
		if got := st.s.publish(t, st.topic, st.size); got != st.want {
			t.Errorf("%s: PUBACK %#x, want %#x", st.name, got, st.want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "ning_broker_retained_messages"); err != nil || n != 1 {
		t.Fatalf("ning_broker_retained_messages: %d series, %v", n, err)
	}
	if n := testutil.ToFloat64(b.bounds.collectors()[0]); n != 3 {
		t.Errorf("ning_broker_retained_messages %v, want 3", n)
	}
	if got := testutil.ToFloat64(b.refusedCounter(RefusedRetainedCount)) + testutil.ToFloat64(b.refusedCounter(RefusedRetainedBytes)); got != 4 {
		t.Errorf("retained refusals counted: %v, want 4", got)
	}
}

// TestSilentSocketClosed: a TCP connection that never sends CONNECT is
// closed after the connect timeout.
func TestSilentSocketClosed(t *testing.T) {
	reg := prometheus.NewRegistry()
	b, err := New(Config{Listen: "127.0.0.1:0", AllowAnonymous: true, ConnectTimeout: 500 * time.Millisecond, Registerer: reg}, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(make([]byte, 1))
	closedAfter := time.Since(start)
	if err == nil {
		t.Fatalf("read %d bytes from the broker before CONNECT", n)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the broker kept a socket without CONNECT open for 10 s")
	}
	t.Logf("socket without CONNECT closed after %s (connect timeout 500ms)", closedAfter.Round(time.Millisecond))
	waitFor(t, "the refusal counted", func() bool { return testutil.ToFloat64(b.refusedCounter(RefusedConnectTimeout)) == 1 })
}

// TestSlowSubscriberDropped: a "#" subscriber whose socket is never read is
// disconnected, and its session dropped, once the bytes waiting for it pass
// the bound; the broker's pending bytes fall back and a reader that keeps
// up is not affected.
func TestSlowSubscriberDropped(t *testing.T) {
	reg := prometheus.NewRegistry()
	b, err := New(Config{Listen: "127.0.0.1:0", AllowAnonymous: true, Registerer: reg,
		Bounds: Bounds{PendingBytesPerClient: 8 << 20}}, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	stuck := stuckSubscriber(t, b.Addr(), "#")
	defer stuck.Close()
	reader, _ := dial(t, b.Addr(), "reader", "", "")
	reader.subscribe(t, "ning/v1/#")
	pub, _ := dial(t, b.Addr(), "pub", "", "")
	payload := make([]byte, 1<<20)
	start := time.Now()
	var dropped time.Duration
	for i := 0; i < 200 && dropped == 0; i++ {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		if _, err := pub.c.Publish(ctx, &paho.Publish{Topic: "ning/v1/flood", QoS: 0, Payload: payload}); err != nil {
			t.Fatal(err)
		}
		cancel()
		if testutil.ToFloat64(b.refusedCounter(RefusedSlowSubscriber))+testutil.ToFloat64(b.refusedCounter(RefusedWriteTimeout)) > 0 {
			dropped = time.Since(start)
			t.Logf("stuck subscriber dropped after %d MiB published, %s", i+1, dropped.Round(time.Millisecond))
		}
	}
	if dropped == 0 {
		t.Fatal("a subscriber that never reads was not dropped after 200 MiB")
	}
	waitFor(t, "its session gone", func() bool { _, ok := b.Server().Clients.Get("stuck"); return !ok })
	waitFor(t, "the pending bytes released", func() bool { return b.bounds.pendingBytes() < 2<<20 })
	if _, ok := reader.payload("ning/v1/flood"); !ok {
		t.Error("the reader that keeps up received nothing")
	}
}

// stuckSubscriber connects as client "stuck" (paho's packet encoder on a
// raw socket with a small receive buffer), subscribes to filter with QoS 0,
// reads the CONNACK and SUBACK, and never reads again.
func stuckSubscriber(t *testing.T, addr, filter string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	cp := packets.NewControlPacket(packets.CONNECT)
	c := cp.Content.(*packets.Connect)
	c.ClientID, c.ProtocolName, c.ProtocolVersion, c.CleanStart = "stuck", "MQTT", 5, true
	sp := packets.NewControlPacket(packets.SUBSCRIBE)
	sub := sp.Content.(*packets.Subscribe)
	sub.PacketID, sub.Subscriptions = 1, []packets.SubOptions{{Topic: filter, QoS: 0}}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	for _, p := range []*packets.ControlPacket{cp, sp} {
		if _, err := p.WriteTo(conn); err != nil {
			t.Fatal(err)
		}
		if _, err := packets.ReadPacket(conn); err != nil {
			t.Fatalf("stuck subscriber: reading the broker's answer: %v", err)
		}
	}
	_ = conn.SetDeadline(time.Time{})
	return conn
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
