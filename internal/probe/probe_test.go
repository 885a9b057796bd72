package probe

import (
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/utils/clock"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    CPUTimes
		wantErr bool
	}{
		{name: "fixture", in: mustRead(t, "testdata/proc/stat"), want: CPUTimes{Idle: 3699176 + 23, Total: 4705 + 356 + 584 + 3699176 + 23 + 23}},
		{name: "old kernel, 4 fields", in: "cpu 1 2 3 4\n", want: CPUTimes{Idle: 4, Total: 10}},
		{name: "guest not counted twice", in: "cpu 10 0 0 10 0 0 0 0 5 5\n", want: CPUTimes{Idle: 10, Total: 20}},
		{name: "no cpu line", in: "intr 1\n", wantErr: true},
		{name: "short", in: "cpu 1 2\n", wantErr: true},
		{name: "not a number", in: "cpu 1 x 3 4\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProcStat([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestUtilisation(t *testing.T) {
	tests := []struct {
		prev, cur CPUTimes
		want      float64
	}{
		{CPUTimes{Idle: 100, Total: 200}, CPUTimes{Idle: 150, Total: 400}, 0.75},
		{CPUTimes{Idle: 100, Total: 200}, CPUTimes{Idle: 300, Total: 400}, 0},
		{CPUTimes{Idle: 100, Total: 200}, CPUTimes{Idle: 100, Total: 200}, 0}, // no time passed
		{CPUTimes{Idle: 100, Total: 200}, CPUTimes{Idle: 10, Total: 20}, 0},   // counters reset
	}
	for _, tt := range tests {
		if got := Utilisation(tt.prev, tt.cur); got != tt.want {
			t.Errorf("Utilisation(%+v, %+v) = %v, want %v", tt.prev, tt.cur, got, tt.want)
		}
	}
}

func TestParsePSI(t *testing.T) {
	tests := []struct {
		file       string
		some, full float64
		wantErr    bool
	}{
		{file: "proc/pressure/cpu", some: 1.5},
		{file: "proc/pressure/memory", some: 12.25, full: 4.75},
		{file: "psi/some-only", some: 2},
		{file: "psi/bad-number", wantErr: true},
		{file: "psi/bad-kind", wantErr: true},
		{file: "psi/over-100", wantErr: true},
		{file: "psi/empty", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			p, err := ParsePSI([]byte(mustRead(t, filepath.Join("testdata", tt.file))))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (p.SomeAvg10 != tt.some || p.FullAvg10 != tt.full) {
				t.Errorf("got some %v full %v, want %v %v", p.SomeAvg10, p.FullAvg10, tt.some, tt.full)
			}
		})
	}
}

func TestLoadReader(t *testing.T) {
	tests := []struct {
		root    string
		wantMem float64
	}{
		{root: "testdata/proc", wantMem: 12.25},
		{root: "testdata/proc-nopsi", wantMem: 0}, // missing PSI: zeros, logged once
	}
	for _, tt := range tests {
		t.Run(tt.root, func(t *testing.T) {
			r := NewLoadReader(tt.root, discard())
			for range 2 {
				l, err := r.Read()
				if err != nil {
					t.Fatal(err)
				}
				if l.GetMemory().GetSomeAvg10() != tt.wantMem || l.GetCpuUtilisation() != 0 {
					t.Errorf("load %v", l)
				}
			}
		})
	}
	if _, err := os.Stat("/proc/stat"); err == nil {
		l, err := NewLoadReader("/proc", discard()).Read()
		if err != nil {
			t.Fatalf("reading this machine's /proc: %v", err)
		}
		t.Logf("this node: %v", l)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		want    Target
		wantErr bool
	}{
		{in: "dallas=10.0.0.1", want: Target{Site: "dallas", Address: "10.0.0.1"}},
		{in: "dallas/node-1=10.0.0.1:7", want: Target{Site: "dallas", Node: "node-1", Address: "10.0.0.1:7"}},
		{in: "v6=[::1]:7", want: Target{Site: "v6", Address: "[::1]:7"}},
		{in: "v6=::1", want: Target{Site: "v6", Address: "::1"}},
		{in: "dallas", wantErr: true},
		{in: "=10.0.0.1", wantErr: true},
		{in: "a+b=10.0.0.1", wantErr: true},
		{in: "d=10.0.0.1:99999", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseTarget(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseTarget(%q) err %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseTarget(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	ts, err := ParseTargets([]byte("# sites\na=1.2.3.4\n\nb/n=5.6.7.8:9 # echo\n"))
	if err != nil || len(ts) != 2 {
		t.Errorf("ParseTargets: %v %v", ts, err)
	}
	if _, err := ParseTargets([]byte("a=1.2.3.4\na=1.2.3.4\n")); err == nil {
		t.Error("duplicate accepted")
	}
}

func TestSummarise(t *testing.T) {
	tests := []struct {
		in   []float64
		want Summary
	}{
		{nil, Summary{}},
		{[]float64{5}, Summary{Min: 5, Avg: 5, Max: 5, P50: 5, P99: 5}},
		{[]float64{4, 2, 6, 8}, Summary{Min: 2, Avg: 5, Max: 8, Stddev: 2.23606797749979, P50: 4, P99: 8}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, Summarise(tt.in)); diff != "" {
			t.Errorf("Summarise(%v) (-want +got):\n%s", tt.in, diff)
		}
	}
}

// udpEcho serves RFC 862 echo on loopback.
func udpEcho(t *testing.T) int {
	port, _ := udpEchoSpans(t)
	return port
}

// udpEchoSpans is udpEcho that also records, per sender address, when its
// first and its last datagram arrived.
func udpEchoSpans(t *testing.T) (port int, spans func() map[string][2]time.Time) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var mu sync.Mutex
	seen := map[string][2]time.Time{}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			now := time.Now()
			mu.Lock()
			sp, ok := seen[addr.String()]
			if !ok {
				sp[0] = now
			}
			sp[1] = now
			seen[addr.String()] = sp
			mu.Unlock()
			_, _ = pc.WriteTo(buf[:n], addr)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port, func() map[string][2]time.Time {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(seen)
	}
}

func tcpServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).Port
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestProbeTargetLoopback(t *testing.T) {
	udp, tcp := udpEcho(t), tcpServer(t)
	deadUDP, deadTCP := closedPort(t, "udp"), closedPort(t, "tcp")
	opts := Options{Count: 5, Interval: 10 * time.Millisecond, Timeout: 300 * time.Millisecond}
	udpOnly := []ningv1.ProbeMethod{ningv1.ProbeMethod_PROBE_METHOD_UDP_ECHO}
	udpTCP := []ningv1.ProbeMethod{ningv1.ProbeMethod_PROBE_METHOD_UDP_ECHO, ningv1.ProbeMethod_PROBE_METHOD_TCP_CONNECT}
	tests := []struct {
		name         string
		addr         string
		methods      []ningv1.ProbeMethod
		udpPort      int
		tcpPort      int
		wantMethod   ningv1.ProbeMethod
		wantReceived uint32
		wantErr      bool
	}{
		{name: "udp echo", addr: "127.0.0.1:" + strconv.Itoa(udp), methods: udpOnly,
			wantMethod: ningv1.ProbeMethod_PROBE_METHOD_UDP_ECHO, wantReceived: 5},
		{name: "tcp connect", addr: "127.0.0.1:" + strconv.Itoa(tcp), methods: []ningv1.ProbeMethod{ningv1.ProbeMethod_PROBE_METHOD_TCP_CONNECT},
			wantMethod: ningv1.ProbeMethod_PROBE_METHOD_TCP_CONNECT, wantReceived: 5},
		{name: "tcp refused still measures the RTT", addr: "127.0.0.1:" + strconv.Itoa(deadTCP), methods: []ningv1.ProbeMethod{ningv1.ProbeMethod_PROBE_METHOD_TCP_CONNECT},
			wantMethod: ningv1.ProbeMethod_PROBE_METHOD_TCP_CONNECT, wantReceived: 5},
		{name: "udp silent falls back to tcp", addr: "127.0.0.1", methods: udpTCP, udpPort: deadUDP, tcpPort: tcp,
			wantMethod: ningv1.ProbeMethod_PROBE_METHOD_TCP_CONNECT, wantReceived: 5, wantErr: false},
		{name: "no port for udp falls back to tcp", addr: "127.0.0.1", methods: udpTCP, tcpPort: tcp,
			wantMethod: ningv1.ProbeMethod_PROBE_METHOD_TCP_CONNECT, wantReceived: 5},
		{name: "nothing answers: full loss", addr: "127.0.0.1", methods: udpOnly, udpPort: deadUDP,
			wantMethod: ningv1.ProbeMethod_PROBE_METHOD_UDP_ECHO, wantReceived: 0, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := opts
			o.Methods, o.UDPPort, o.TCPPort = tt.methods, tt.udpPort, tt.tcpPort
			r := Measure(t.Context(), Target{Site: "lo", Address: tt.addr}, o)
			if r.GetMethod() != tt.wantMethod || r.GetReceived() != tt.wantReceived || r.GetSent() != 5 {
				t.Fatalf("got method %v sent %d received %d (%s), want %v 5 %d", r.GetMethod(), r.GetSent(), r.GetReceived(), r.GetError(), tt.wantMethod, tt.wantReceived)
			}
			if (r.GetError() != "") != tt.wantErr {
				t.Errorf("error %q, want error %v", r.GetError(), tt.wantErr)
			}
			if tt.wantReceived > 0 {
				if len(r.GetRttMs()) != int(tt.wantReceived) || r.GetAvgMs() <= 0 || r.GetAvgMs() > 50 || r.GetMinMs() > r.GetP50Ms() || r.GetP50Ms() > r.GetMaxMs() {
					t.Errorf("implausible loopback stats: %v", r)
				}
			}
		})
	}
}

func TestProbeICMPLoopback(t *testing.T) {
	for _, m := range []ningv1.ProbeMethod{ningv1.ProbeMethod_PROBE_METHOD_ICMP_RAW, ningv1.ProbeMethod_PROBE_METHOD_ICMP_UDP} {
		t.Run(methodName(m), func(t *testing.T) {
			r := Measure(t.Context(), Target{Site: "lo", Address: "127.0.0.1"},
				Options{Count: 3, Interval: 10 * time.Millisecond, Timeout: 300 * time.Millisecond, Methods: []ningv1.ProbeMethod{m}})
			if r.GetReceived() == 0 {
				t.Skipf("%s not usable here (needs CAP_NET_RAW or ping_group_range): %s", methodName(m), r.GetError())
			}
			if r.GetMethod() != m || r.GetReceived() != 3 {
				t.Errorf("got %v", r)
			}
		})
	}
}

// TestUnsettled: of the unanswered requests, those that had less than the
// timeout when the run ended are not counted; the others are lost.
func TestUnsettled(t *testing.T) {
	end := time.Unix(100, 0)
	unanswered := map[int]time.Time{
		0: end.Add(-time.Second),            // lost
		1: end.Add(-200 * time.Millisecond), // had exactly the timeout: lost
		2: end.Add(-199 * time.Millisecond), // in flight
		3: end.Add(-time.Millisecond),       // in flight
	}
	if got := unsettled(unanswered, end, 200*time.Millisecond); got != 2 {
		t.Errorf("unsettled = %d, want 2", got)
	}
	if got := unsettled(nil, end, 200*time.Millisecond); got != 0 {
		t.Errorf("unsettled(nil) = %d, want 0", got)
	}
}

func TestRoundConcurrentWithLoadAndMetrics(t *testing.T) {
	udp, spans := udpEchoSpans(t)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var targets []Target
	for _, s := range []string{"a", "b", "c", "d"} {
		targets = append(targets, Target{Site: s, Node: s + "-1", Address: "127.0.0.1:" + strconv.Itoa(udp)})
	}
	p := &Prober{
		Site: "home", Node: "home-1", Targets: targets,
		Options: Options{Count: 5, Interval: 50 * time.Millisecond, Timeout: 200 * time.Millisecond,
			Methods: []ningv1.ProbeMethod{ningv1.ProbeMethod_PROBE_METHOD_UDP_ECHO}},
		Load: NewLoadReader("testdata/proc", discard()), Clock: clock.RealClock{}, Metrics: m, Log: discard(),
	}
	r, err := p.Round(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Each target is probed from a socket of its own. Probed concurrently,
	// every target's first datagram arrives before any target's last one;
	// probed one after another, each starts after the one before has ended.
	sp := spans()
	if len(sp) != 4 {
		t.Fatalf("datagrams from %d sockets, want one per target (4)", len(sp))
	}
	var lastFirst, firstLast time.Time
	for _, s := range sp {
		if s[0].After(lastFirst) {
			lastFirst = s[0]
		}
		if firstLast.IsZero() || s[1].Before(firstLast) {
			firstLast = s[1]
		}
	}
	if !lastFirst.Before(firstLast) {
		t.Errorf("a target's probes started %v after another's had ended: targets not probed concurrently", lastFirst.Sub(firstLast))
	}
	// The report says when the probes went out (the sign of its targets'
	// sites) and when the round ended (the sign of its own).
	var firstFirst, lastLast time.Time
	for _, s := range sp {
		if firstFirst.IsZero() || s[0].Before(firstFirst) {
			firstFirst = s[0]
		}
		if s[1].After(lastLast) {
			lastLast = s[1]
		}
	}
	if st, end := r.GetStarted().AsTime(), r.GetTime().AsTime(); r.GetStarted() == nil || st.After(firstFirst) || end.Before(lastLast) {
		t.Errorf("round started %v and ended %v; its datagrams went from %v to %v", st, end, firstFirst, lastLast)
	}
	if len(r.GetTargets()) != 4 || r.GetMethod() != ningv1.ProbeMethod_PROBE_METHOD_UDP_ECHO || r.GetLoad() == nil {
		t.Errorf("report %v", r)
	}
	if n := testutil.CollectAndCount(m.rtt); n != 4 {
		t.Errorf("%d RTT histograms, want 4", n)
	}
	if v := testutil.ToFloat64(m.loss.WithLabelValues("a", "a-1")); v != 0 {
		t.Errorf("loss %v", v)
	}
	sc := NewScores("home-1", 0.3)
	sc.Update(r)
	got := sc.List()
	if len(got) != 5 || got[0].Hostname != "home-1" || got[1].Hostname != "a-1" || got[1].LatencyEwmaScore <= 0 || got[1].LatencyEwmaScore > 0.05 {
		t.Errorf("scores %+v", got)
	}
}

func TestScoresSemantics(t *testing.T) {
	sc := NewScores("self", 0.5)
	rep := func(avg float64, recv uint32) *ningv1.LatencyReport {
		return &ningv1.LatencyReport{Load: &ningv1.NodeLoad{CpuUtilisation: 0.8},
			Targets: []*ningv1.TargetResult{{Site: "far", Address: "10.0.0.9", Sent: 5, Received: recv, AvgMs: avg}, {Site: "dead", Sent: 5}}}
	}
	sc.Update(rep(200, 5))
	sc.Update(rep(600, 5)) // EWMA 400 ms -> 1 (worst)
	sc.Update(rep(0, 0))   // all lost: keeps the EWMA
	want := []Score{
		{Hostname: "self", CPUEwmaScore: 0.8},
		{Hostname: "dead", LatencyEwmaScore: 1},
		{Hostname: "far", IPv4: "10.0.0.9", LatencyEwmaScore: 1},
	}
	if diff := cmp.Diff(want, sc.List()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	sc2 := NewScores("self", 1)
	sc2.Update(rep(100, 5))
	if got := sc2.List()[2].LatencyEwmaScore; got != 0.25 {
		t.Errorf("100 ms scored %v, want 0.25 (usage: rtt/400ms, higher is worse)", got)
	}
}

// delayEcho is a UDP echo server that answers after delay and drops every
// dropEvery-th datagram (0: none), emulating a WAN link on loopback.
func delayEcho(t *testing.T, delay time.Duration, dropEvery int) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		for n := 1; ; n++ {
			buf := make([]byte, 1500)
			k, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if dropEvery > 0 && n%dropEvery == 0 {
				continue
			}
			time.AfterFunc(delay, func() { _, _ = pc.WriteTo(buf[:k], addr) })
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

func TestUDPEchoMeasuresConfiguredDelay(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test: skipped in -short (make test-netns runs it)")
	}
	tests := []struct {
		delay     time.Duration
		dropEvery int
		wantLoss  float64
	}{
		{delay: 10 * time.Millisecond},
		{delay: 40 * time.Millisecond},
		{delay: 60 * time.Millisecond},
		{delay: 40 * time.Millisecond, dropEvery: 5, wantLoss: 0.2},
	}
	for _, tt := range tests {
		t.Run(tt.delay.String()+"/drop"+strconv.Itoa(tt.dropEvery), func(t *testing.T) {
			port := delayEcho(t, tt.delay, tt.dropEvery)
			r := Measure(t.Context(), Target{Site: "wan", Address: "127.0.0.1:" + strconv.Itoa(port)},
				Options{Count: 20, Interval: 10 * time.Millisecond, Timeout: 500 * time.Millisecond,
					Methods: []ningv1.ProbeMethod{ningv1.ProbeMethod_PROBE_METHOD_UDP_ECHO}})
			want := float64(tt.delay) / float64(time.Millisecond)
			loss := 1 - float64(r.GetReceived())/float64(r.GetSent())
			t.Logf("configured %.0f ms, loss %.2f: measured avg %.3f ms (p50 %.3f, p99 %.3f, stddev %.3f), loss %.2f",
				want, tt.wantLoss, r.GetAvgMs(), r.GetP50Ms(), r.GetP99Ms(), r.GetStddevMs(), loss)
			if math.Abs(r.GetAvgMs()-want) > 2 {
				t.Errorf("avg %.3f ms, want %.0f ± 2 ms", r.GetAvgMs(), want)
			}
			if math.Abs(loss-tt.wantLoss) > 0.05 {
				t.Errorf("loss %.2f, want %.2f ± 0.05", loss, tt.wantLoss)
			}
		})
	}
}
