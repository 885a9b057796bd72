package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/netem"
	"github.com/ning-edge/ning/internal/netem/netemtest"
)

// netnsLinks are the emulated WAN links from the probing site a, as round
// trips: each direction of each veth holds packets for half the delay and
// jitter in an NFQUEUE delayer (this kernel has no sch_netem).
var netnsLinks = []struct {
	site string
	rtt  netem.Shape
}{
	{"b", netem.Shape{Delay: 10 * time.Millisecond}},
	{"c", netem.Shape{Delay: 40 * time.Millisecond}},
	{"d", netem.Shape{Delay: 60 * time.Millisecond}},
	{"e", netem.Shape{Delay: 40 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.10}},
}

// Tolerances of the end-to-end test. The prober is held to the round trip
// the test measures itself over the same link while the prober runs (a UDP
// echo, one packet at a time: what the delayers really add, about 0.8 ms
// above the configured figure, and what a stall of the machine adds to every
// packet in flight), not to the configured figure; the delayers are held to
// the configured one, more loosely.
const (
	netnsRTTTolerance   = 1.0  // ms, prober's average vs the reference round trip
	netnsDelayTolerance = 2.0  // ms, the reference round trip vs the configured RTT
	netnsLossTolerance  = 0.05 // measured vs configured loss on a lossy link, as a share
	netnsLostLossless   = 1    // probes lost on a link configured without loss
	netnsCount          = 400  // probes per target: loss within 5 points at 3 sigma
	netnsRefCount       = 100  // reference round trips per target and method, at least
)

// netnsStddevBounds is the range the prober's standard deviation must lie in
// for a link with the given RTT jitter, when the reference round trips just
// before spread by refStddev. The delayer spreads each direction's delay
// uniformly over ±jitter/2, so a round trip's spread is that of the sum of two
// such draws, jitter/√6: the prober must see at least 80 % of it. Above, it
// may not spread more than the reference did (which holds the jitter and the
// delayers' own noise) by more than a quarter and half a millisecond.
func netnsStddevBounds(jitterMs, refStddev float64) (lo, hi float64) {
	want := jitterMs / math.Sqrt(6)
	return 0.8 * want, 1.25*max(want, refStddev) + 0.5
}

// referenceRTT times UDP echoes to addr:7 from namespace from, one at a
// time, until stop is closed (and at least min of them), and returns their
// mean, standard deviation and the number lost.
func referenceRTT(lab *netem.Lab, from, addr string, min int, stop <-chan struct{}) (avg, stddev float64, lost int, err error) {
	var conn net.Conn
	if err := lab.Do(from, func() (err error) {
		conn, err = net.Dial("udp4", addr+":7")
		return err
	}); err != nil {
		return 0, 0, 0, err
	}
	defer func() { _ = conn.Close() }()
	var samples []float64
	buf := make([]byte, 64)
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	for i := 0; i < min || !stopped(); i++ {
		msg := fmt.Appendf(nil, "ref %d", i)
		start := time.Now()
		if _, err := conn.Write(msg); err != nil {
			return 0, 0, 0, err
		}
		for {
			if err := conn.SetReadDeadline(start.Add(200 * time.Millisecond)); err != nil {
				return 0, 0, 0, err
			}
			m, err := conn.Read(buf)
			if err != nil {
				lost++
				break
			}
			if bytes.Equal(buf[:m], msg) { // an earlier, late echo is skipped
				samples = append(samples, ms(time.Since(start)))
				break
			}
		}
	}
	if len(samples) == 0 {
		return 0, 0, lost, fmt.Errorf("no echo from %s in %d tries", addr, lost)
	}
	avg, stddev = trimmedStats(samples)
	return avg, stddev, lost, nil
}

// netnsTrim is the share of the highest round trips that trimmedStats
// leaves out.
const netnsTrim = 0.02

// trimmedStats returns the mean and standard deviation of samples without
// their highest netnsTrim: a stall of the machine (another process holding
// both CPUs, a page-cache flush) holds the few packets in flight at that
// moment for many milliseconds, whatever the prober does, and one such
// round trip of 30 ms moves a standard deviation of 0.3 ms to 1.5. The
// prober's round trips and the reference's are trimmed alike.
func trimmedStats(samples []float64) (avg, stddev float64) {
	s := slices.Sorted(slices.Values(samples))
	s = s[:len(s)-int(math.Ceil(netnsTrim*float64(len(s))))]
	if len(s) == 0 {
		return 0, 0
	}
	for _, v := range s {
		avg += v
	}
	avg /= float64(len(s))
	for _, v := range s {
		stddev += (v - avg) * (v - avg)
	}
	return avg, math.Sqrt(stddev / float64(len(s)))
}

// TestNetnsEndToEnd runs the real `ning probe --once` inside a network
// namespace (site a) against four others over veth links with emulated WAN
// delay, jitter and loss, once per method, and checks the measured average RTT
// and loss against the configured ones. It needs root, iproute2 and iptables
// (with the kernel's nfnetlink_queue); without them it skips with a message.
func TestNetnsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("network-namespace test skipped in -short (make test-netns runs it, as root)")
	}
	netemtest.RequireBuildLab(t, "network-namespace test")
	bin := filepath.Join(t.TempDir(), "ning")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/ning").CombinedOutput(); err != nil {
		t.Fatalf("building ning: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()

	// One timing test at a time across test binaries, and ahead of other
	// work on the machine for a CPU: the delayer and the prober run in user
	// space, and a starved one adds milliseconds to every round trip.
	netemtest.LockForTiming(t)
	lab, err := netem.NewLab(fmt.Sprintf("ning%d", os.Getpid()%100000))
	if err != nil {
		netemtest.Skip(t, "network-namespace test skipped: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("cleaning up: %v", err)
		}
	})
	netemtest.Seed(t, lab)
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		if err := lab.AddNamespace(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	var targets []string
	addrs := map[string]string{}
	for _, l := range netnsLinks {
		_, addr, err := lab.Link(ctx, "a", l.site, l.rtt)
		if err != nil {
			if strings.Contains(err.Error(), "NFQUEUE") || strings.Contains(err.Error(), "nfqueue") {
				netemtest.Skip(t, "network-namespace test skipped: no NFQUEUE support: %v", err)
			}
			t.Fatal(err)
		}
		addrs[l.site] = addr
		targets = append(targets, "--target", l.site+"="+addr)
		// A UDP echo server on port 7 of every target site.
		var pc net.PacketConn
		if err := lab.Do(l.site, func() (err error) {
			pc, err = net.ListenPacket("udp4", addr+":7")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pc.Close() })
		go serveEcho(pc)
	}

	var (
		mu   sync.Mutex
		rows []row
	)
	runProbe := func(t *testing.T, methods string, count int, interval string, extra ...string) *ningv1.LatencyReport {
		t.Helper()
		args := append([]string{"netns", "exec", lab.Namespace("a"), bin, "probe", "--once", "--site", "a", "--node", "a-1",
			"--methods", methods, "--count", fmt.Sprint(count), "--interval", interval, "--timeout", "200ms",
			"-o", "json", "--log-level", "error"}, targets...)
		args = append(args, extra...)
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, "ip", args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("ning probe: %v\n%s", err, stderr.String())
		}
		var r ningv1.LatencyReport
		if err := protojson.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatalf("decoding: %v\n%s", err, stdout.String())
		}
		return &r
	}

	// ICMP probes go out every interval whatever the replies; UDP echo and
	// TCP connect wait for each reply (or the timeout) before the next.
	// The methods run one after another: on a busy two-CPU machine running
	// them at once adds a millisecond of scheduling delay to the delayers.
	tests := []struct {
		methods  string
		interval string
		extra    []string
		want     ningv1.ProbeMethod
	}{
		{methods: "icmp-raw", interval: "10ms", want: ningv1.ProbeMethod_PROBE_METHOD_ICMP_RAW},
		{methods: "icmp-udp", interval: "10ms", want: ningv1.ProbeMethod_PROBE_METHOD_ICMP_UDP},
		{methods: "udp", interval: "5ms", extra: []string{"--udp-port", "7"}, want: ningv1.ProbeMethod_PROBE_METHOD_UDP_ECHO},
		{methods: "tcp", interval: "5ms", extra: []string{"--tcp-port", "9"}, want: ningv1.ProbeMethod_PROBE_METHOD_TCP_CONNECT}, // RST from a closed port
	}
	// references starts every link's reference round trip, all links at
	// once; the function it returns stops them and gives their figures.
	references := func(t *testing.T) func() map[string][2]float64 {
		t.Helper()
		var (
			wg   sync.WaitGroup
			rmu  sync.Mutex
			refs = map[string][2]float64{}
			stop = make(chan struct{})
		)
		for _, l := range netnsLinks {
			wg.Go(func() {
				avg, sd, _, err := referenceRTT(lab, "a", addrs[l.site], netnsRefCount, stop)
				rmu.Lock()
				defer rmu.Unlock()
				if err != nil {
					t.Errorf("reference round trip to %s: %v", l.site, err)
					return
				}
				refs[l.site] = [2]float64{avg, sd}
			})
		}
		return func() map[string][2]float64 {
			close(stop)
			wg.Wait()
			return refs
		}
	}
	t.Run("accuracy", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.methods, func(t *testing.T) {
				// A measurement may fall on a long stall of the machine (all
				// links off by a millisecond or two at once); a prober that
				// is wrong is wrong every time. The misses of the first
				// attempts are logged, the last one's fail the test.
				const attempts = 3
				var got []row
				for attempt := 1; attempt <= attempts; attempt++ {
					var errs []error
					got, errs = measureMethod(t, tt.methods, tt.interval, tt.want, tt.extra, references, runProbe)
					if len(errs) == 0 {
						break
					}
					for _, err := range errs {
						if attempt < attempts {
							t.Logf("attempt %d (measured again): %v", attempt, err)
						} else {
							t.Error(err)
						}
					}
				}
				mu.Lock()
				rows = append(rows, got...)
				mu.Unlock()
			})
		}
	})

	sort.Slice(rows, func(i, j int) bool {
		if rows[i].method != rows[j].method {
			return rows[i].method < rows[j].method
		}
		return rows[i].site < rows[j].site
	})
	var b strings.Builder
	fmt.Fprintf(&b, "measured vs configured, %d probes per target and method, NFQUEUE delayer; reference: UDP echoes per target, one at a time, alongside (at least %d); both without their highest %.0f %%:\n", netnsCount, netnsRefCount, 100*netnsTrim)
	fmt.Fprintf(&b, "%-12s %-5s %-16s %-16s %-11s %-8s %-9s %-10s %s\n", "method", "site", "configured RTT", "reference", "measured", "diff", "stddev", "loss cfg", "loss measured")
	for _, r := range rows {
		cfg := fmt.Sprintf("%.0f ms", r.cfgRTT)
		if r.cfgJitter > 0 {
			cfg += fmt.Sprintf(" ± %.0f", r.cfgJitter)
		}
		fmt.Fprintf(&b, "%-12s %-5s %-16s %-16s %-11s %-8s %-9s %-10s %.1f %% (%d/%d)\n", r.method, r.site, cfg,
			fmt.Sprintf("%.2f ± %.2f ms", r.ref, r.refStddev), fmt.Sprintf("%.2f ms", r.avg), fmt.Sprintf("%+.2f", r.avg-r.ref), fmt.Sprintf("%.2f", r.stddev),
			fmt.Sprintf("%.0f %%", 100*r.cfgLoss), 100*r.loss, r.sent-r.received, r.sent)
	}
	t.Log("\n" + b.String())
	// make bench puts this table in bench/report.md.
	if file := os.Getenv("NING_NETNS_REPORT"); file != "" {
		if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
			t.Errorf("NING_NETNS_REPORT: %v", err)
		}
	}

	// Fallback: no echo server on UDP port 8, so every target falls back to TCP.
	t.Run("udp-falls-back-to-tcp", func(t *testing.T) {
		r := runProbe(t, "udp,tcp", 5, "5ms", "--udp-port", "8", "--tcp-port", "9")
		for _, tr := range r.GetTargets() {
			if tr.GetMethod() != ningv1.ProbeMethod_PROBE_METHOD_TCP_CONNECT || tr.GetReceived() == 0 {
				t.Errorf("target %s: method %s, %d/%d received, want tcp_connect with replies", tr.GetSite(), methodName(tr.GetMethod()), tr.GetReceived(), tr.GetSent())
			}
		}
	})
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// accuracy is what one probe run measured to one target, and the reference
// round trip measured alongside it.
type accuracy struct {
	ref, refStddev, avg, stddev float64 // ms
	sent, received              uint32
}

// checkAccuracy returns every way a probe run's figures for a link with the
// configured shape miss the test's tolerances.
func checkAccuracy(method, site string, cfg netem.Shape, a accuracy) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s -> %s: "+format, append([]any{method, site}, args...)...))
	}
	if d := a.ref - ms(cfg.Delay); math.Abs(d) > netnsDelayTolerance {
		fail("the delayers' reference round trip is %.2f ms, %+.2f ms from the configured %.0f ms (tolerance ±%.0f ms): the lab, not the prober, is off",
			a.ref, d, ms(cfg.Delay), netnsDelayTolerance)
	}
	if d := a.avg - a.ref; math.Abs(d) > netnsRTTTolerance {
		fail("average RTT %.2f ms, %+.2f ms from the reference round trip %.2f ms (tolerance ±%.1f ms)", a.avg, d, a.ref, netnsRTTTolerance)
	}
	if lo, hi := netnsStddevBounds(ms(cfg.Jitter), a.refStddev); a.stddev < lo || a.stddev > hi {
		fail("standard deviation %.2f ms, want %.2f..%.2f ms for a jitter of %.0f ms (the reference spread %.2f ms)",
			a.stddev, lo, hi, ms(cfg.Jitter), a.refStddev)
	}
	lost := int(a.sent) - int(a.received)
	loss := float64(lost) / float64(max(a.sent, 1))
	switch {
	case cfg.Loss == 0 && lost > netnsLostLossless:
		fail("%d of %d probes lost on a link without loss (at most %d)", lost, a.sent, netnsLostLossless)
	case cfg.Loss > 0 && math.Abs(loss-cfg.Loss) > netnsLossTolerance:
		fail("loss %.1f %% (%d/%d), configured %.0f %% (tolerance ±%.0f points)", 100*loss, lost, a.sent, 100*cfg.Loss, 100*netnsLossTolerance)
	}
	if a.sent != netnsCount {
		fail("%d probes sent, want %d", a.sent, netnsCount)
	}
	return errs
}

// serveEcho echoes every datagram until pc is closed.
func serveEcho(pc net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		_, _ = pc.WriteTo(buf[:n], from)
	}
}

// row is one link's measurement by one method, for the test's table.
type row struct {
	method, site      string
	cfgRTT, cfgJitter float64
	cfgLoss           float64
	ref, refStddev    float64 // the reference round trip
	avg, stddev, loss float64
	received, sent    uint32
}

// measureMethod measures every link with one method against each link's
// reference round trip, and returns the rows and what checkAccuracy found.
func measureMethod(t *testing.T, methods, interval string, want ningv1.ProbeMethod, extra []string,
	references func(*testing.T) func() map[string][2]float64,
	runProbe func(t *testing.T, methods string, count int, interval string, extra ...string) *ningv1.LatencyReport) ([]row, []error) {
	t.Helper()
	stopReferences := references(t)
	r := runProbe(t, methods, netnsCount, interval, extra...)
	refs := stopReferences()
	if len(r.GetTargets()) != len(netnsLinks) {
		t.Fatalf("%d targets in the report, want %d", len(r.GetTargets()), len(netnsLinks))
	}
	var rows []row
	var errs []error
	for _, tr := range r.GetTargets() {
		var cfg netem.Shape
		for _, l := range netnsLinks {
			if l.site == tr.GetSite() {
				cfg = l.rtt
			}
		}
		if tr.GetMethod() != want {
			t.Errorf("target %s: method %s, want %s (%s)", tr.GetSite(), methodName(tr.GetMethod()), methodName(want), tr.GetError())
			continue
		}
		rw := row{method: methodName(want), site: tr.GetSite(),
			cfgRTT: ms(cfg.Delay), cfgJitter: ms(cfg.Jitter), cfgLoss: cfg.Loss,
			ref: refs[tr.GetSite()][0], refStddev: refs[tr.GetSite()][1],
			received: tr.GetReceived(), sent: tr.GetSent()}
		rw.avg, rw.stddev = trimmedStats(tr.GetRttMs())
		rw.loss = 1 - float64(rw.received)/float64(max(rw.sent, 1))
		errs = append(errs, checkAccuracy(rw.method, rw.site, cfg, accuracy{
			ref: rw.ref, refStddev: rw.refStddev, avg: rw.avg, stddev: rw.stddev, sent: rw.sent, received: rw.received,
		})...)
		rows = append(rows, rw)
	}
	return rows, errs
}

// TestTrimmedStats shows that a stalled round trip leaves the figures alone
// and that the trim takes only the highest ones.
func TestTrimmedStats(t *testing.T) {
	samples := make([]float64, 100)
	for i := range samples {
		samples[i] = 10 + float64(i%2) // 10, 11, 10, 11, ...: mean 10.5, spread 0.5
	}
	samples[7] = 40 // one round trip held by a stall
	if avg, sd := trimmedStats(samples); math.Abs(avg-10.49) > 0.01 || math.Abs(sd-0.5) > 0.01 {
		t.Errorf("with a stalled round trip: mean %.3f, stddev %.3f; want 10.49 and 0.50", avg, sd)
	}
	low := slices.Clone(samples)
	low[7] = 1 // a low outlier is the prober's or the delayer's, not a stall: it stays
	if avg, _ := trimmedStats(low); avg > 10.4 {
		t.Errorf("a low round trip was trimmed: mean %.3f", avg)
	}
}

// oldAccuracyPasses is the end-to-end test's check before checkAccuracy,
// kept to show what it let through: the prober's mean within ±2 ms of the
// configured RTT (whatever the delayers add), the loss within 5 points on
// every link, and every probe sent; no look at the spread.
func oldAccuracyPasses(cfg netem.Shape, a accuracy) bool {
	loss := 1 - float64(a.received)/float64(max(a.sent, 1))
	return math.Abs(a.avg-ms(cfg.Delay)) <= 2 && math.Abs(loss-cfg.Loss) <= 0.05 && a.sent == netnsCount
}

// TestCheckAccuracy shows that the end-to-end test's tolerances reject what
// the looser ones before them let through: a prober 1.5 ms above the real
// round trip (inside the old ±2 ms of the configured RTT), 15 lost probes on a
// lossless link (inside the old 5 points), and a jittered link measured with
// no spread. Each case says whether the old check passed it, and the old
// check is run on it to confirm.
func TestCheckAccuracy(t *testing.T) {
	plain := netem.Shape{Delay: 40 * time.Millisecond}
	jittered := netem.Shape{Delay: 40 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.10}
	good := accuracy{ref: 40.8, avg: 41.0, stddev: 0.3, sent: netnsCount, received: netnsCount}
	tests := []struct {
		name      string
		cfg       netem.Shape
		a         accuracy
		want      int  // errors
		oldPassed bool // the old check let it through
	}{
		{"good", plain, good, 0, true},
		{"one lost on a lossless link", plain, accuracy{ref: 40.8, avg: 41.0, stddev: 0.3, sent: netnsCount, received: netnsCount - 1}, 0, true},
		{"1.5 ms above the reference", plain, accuracy{ref: 40.4, avg: 41.9, stddev: 0.3, sent: netnsCount, received: netnsCount}, 1, true},
		{"1.2 ms below the reference", plain, accuracy{ref: 40.8, avg: 39.6, stddev: 0.3, sent: netnsCount, received: netnsCount}, 1, true},
		{"15 lost on a lossless link", plain, accuracy{ref: 40.8, avg: 41.0, stddev: 0.3, sent: netnsCount, received: netnsCount - 15}, 1, true},
		{"spread on a link without jitter", plain, accuracy{ref: 40.8, refStddev: 0.2, avg: 41.0, stddev: 3, sent: netnsCount, received: netnsCount}, 1, true},
		{"jitter measured as no spread", jittered, accuracy{ref: 40.8, refStddev: 2.1, avg: 41.0, stddev: 0.2, sent: netnsCount, received: 360}, 1, true},
		{"jittered link measured well", jittered, accuracy{ref: 40.8, refStddev: 2.1, avg: 41.0, stddev: 2.1, sent: netnsCount, received: 362}, 0, true},
		{"loss far from the configured 10 %", jittered, accuracy{ref: 40.8, refStddev: 2.1, avg: 41.0, stddev: 2.1, sent: netnsCount, received: 300}, 1, false},
		{"the delayer itself off", plain, accuracy{ref: 43.5, avg: 43.6, stddev: 0.3, sent: netnsCount, received: netnsCount}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := checkAccuracy("icmp-raw", "c", tt.cfg, tt.a)
			if len(errs) != tt.want {
				t.Errorf("%d errors %v, want %d", len(errs), errs, tt.want)
			}
			if got := oldAccuracyPasses(tt.cfg, tt.a); got != tt.oldPassed {
				t.Errorf("the old check passed it: %v, want %v", got, tt.oldPassed)
			}
		})
	}
}
