// Package probe measures the RTT from this node to target sites and reads
// this node's load, producing one LatencyReport per round.
//
// Method order, per target: ICMP echo on a raw socket (needs CAP_NET_RAW),
// then ICMP on an unprivileged datagram socket (needs net.ipv4.ping_group_range
// to include the process's group), then UDP echo (an echo server on the
// target's port), then TCP connect (SYN to SYN-ACK or RST). The next method is
// tried when one cannot run (no socket permission, no port) or gets no reply
// at all, so a firewalled ICMP still yields a measurement; a target that
// answers nothing is reported with the last method tried and full loss.
package probe

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/utils/clock"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
)

// Target is one place to probe.
type Target struct {
	Site    string
	Node    string // optional
	Address string // host or host:port
}

// ParseTarget parses SITE[/NODE]=HOST[:PORT].
func ParseTarget(s string) (Target, error) {
	name, addr, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok || name == "" || addr == "" {
		return Target{}, fmt.Errorf("target %q: want SITE[/NODE]=HOST[:PORT]", s)
	}
	site, node, _ := strings.Cut(name, "/")
	if site == "" || strings.ContainsAny(site, "/+#") {
		return Target{}, fmt.Errorf("target %q: bad site name %q", s, site)
	}
	if _, _, err := splitHostPort(addr); err != nil {
		return Target{}, fmt.Errorf("target %q: %w", s, err)
	}
	return Target{Site: site, Node: node, Address: addr}, nil
}

// ParseTargets parses a targets file: one SITE[/NODE]=HOST[:PORT] a line;
// blank lines and # comments are ignored. Duplicates are an error.
func ParseTargets(data []byte) ([]Target, error) {
	var out []Target
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if strings.TrimSpace(line) == "" {
			continue
		}
		t, err := ParseTarget(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		key := t.Site + "/" + t.Node + "=" + t.Address
		if prev, dup := seen[key]; dup {
			return nil, fmt.Errorf("line %d: same target as line %d", n, prev)
		}
		seen[key] = n
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading targets: %w", err)
	}
	return out, nil
}

// splitHostPort accepts host, host:port, [v6] and [v6]:port.
func splitHostPort(addr string) (host string, port int, err error) {
	if h, p, err := net.SplitHostPort(addr); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return "", 0, fmt.Errorf("port %q: want 1..65535", p)
		}
		return h, n, nil
	}
	h := strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	if h == "" || strings.ContainsAny(h, " /") {
		return "", 0, fmt.Errorf("address %q: want HOST[:PORT]", addr)
	}
	return h, 0, nil
}

// DefaultMethods is the fallback order.
var DefaultMethods = []ningv1.ProbeMethod{
	ningv1.ProbeMethod_PROBE_METHOD_ICMP_RAW,
	ningv1.ProbeMethod_PROBE_METHOD_ICMP_UDP,
	ningv1.ProbeMethod_PROBE_METHOD_UDP_ECHO,
	ningv1.ProbeMethod_PROBE_METHOD_TCP_CONNECT,
}

// ParseMethods parses a comma-separated list: icmp (raw then datagram),
// icmp-raw, icmp-udp, udp, tcp.
func ParseMethods(s string) ([]ningv1.ProbeMethod, error) {
	var out []ningv1.ProbeMethod
	for _, m := range strings.Split(s, ",") {
		switch strings.TrimSpace(m) {
		case "icmp":
			out = append(out, ningv1.ProbeMethod_PROBE_METHOD_ICMP_RAW, ningv1.ProbeMethod_PROBE_METHOD_ICMP_UDP)
		case "icmp-raw":
			out = append(out, ningv1.ProbeMethod_PROBE_METHOD_ICMP_RAW)
		case "icmp-udp":
			out = append(out, ningv1.ProbeMethod_PROBE_METHOD_ICMP_UDP)
		case "udp":
			out = append(out, ningv1.ProbeMethod_PROBE_METHOD_UDP_ECHO)
		case "tcp":
			out = append(out, ningv1.ProbeMethod_PROBE_METHOD_TCP_CONNECT)
		default:
			return nil, fmt.Errorf("method %q: want icmp, icmp-raw, icmp-udp, udp or tcp", m)
		}
	}
	return out, nil
}

// Options tune a probe round.
type Options struct {
	// Count is the probes per target per round (default 5, as the seed).
	Count int
	// Interval is the gap between probes to one target (default 200 ms).
	Interval time.Duration
	// Timeout is how long one probe waits for its reply (default 1 s).
	Timeout time.Duration
	// Methods in fallback order (default DefaultMethods).
	Methods []ningv1.ProbeMethod
	// UDPPort and TCPPort are used for targets without a port; 0 skips
	// that method for them.
	UDPPort, TCPPort int
}

func (o Options) withDefaults() Options {
	if o.Count <= 0 {
		o.Count = 5
	}
	if o.Interval <= 0 {
		o.Interval = 200 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if len(o.Methods) == 0 {
		o.Methods = DefaultMethods
	}
	return o
}

// errUnavailable marks a method that cannot run for a target.
var errUnavailable = errors.New("method unavailable")

// methodFunc runs Count probes of one kind; the deadline comes from ctx.
type methodFunc func(ctx context.Context, host string, port int, o Options) (rtts []time.Duration, sent int, err error)

func methodFor(m ningv1.ProbeMethod) methodFunc {
	switch m {
	case ningv1.ProbeMethod_PROBE_METHOD_ICMP_RAW:
		return func(ctx context.Context, host string, _ int, o Options) ([]time.Duration, int, error) {
			return probeICMP(ctx, host, true, o)
		}
	case ningv1.ProbeMethod_PROBE_METHOD_ICMP_UDP:
		return func(ctx context.Context, host string, _ int, o Options) ([]time.Duration, int, error) {
			return probeICMP(ctx, host, false, o)
		}
	case ningv1.ProbeMethod_PROBE_METHOD_UDP_ECHO:
		return probeUDPEcho
	case ningv1.ProbeMethod_PROBE_METHOD_TCP_CONNECT:
		return probeTCP
	}
	return nil
}

// Measure measures one target, falling back through o.Methods.
func Measure(ctx context.Context, t Target, o Options) *ningv1.TargetResult {
	o = o.withDefaults()
	res := &ningv1.TargetResult{Site: t.Site, Node: t.Node, Address: t.Address}
	host, port, err := splitHostPort(t.Address)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	var errs []string
	for _, m := range o.Methods {
		p := port
		switch m {
		case ningv1.ProbeMethod_PROBE_METHOD_UDP_ECHO:
			if p == 0 {
				p = o.UDPPort
			}
		case ningv1.ProbeMethod_PROBE_METHOD_TCP_CONNECT:
			if p == 0 {
				p = o.TCPPort
			}
		}
		f := methodFor(m)
		if f == nil {
			continue
		}
		rtts, sent, err := f(ctx, host, p, o)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", methodName(m), err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		fill(res, m, rtts, sent)
		if len(rtts) > 0 {
			res.Error = ""
			return res
		}
		errs = append(errs, fmt.Sprintf("%s: no reply", methodName(m)))
	}
	if res.Sent == 0 {
		// Nothing could even be sent: report the attempt as lost.
		res.Sent = uint32(o.Count)
	}
	res.Error = strings.Join(errs, "; ")
	return res
}

func methodName(m ningv1.ProbeMethod) string {
	return strings.ToLower(strings.TrimPrefix(m.String(), "PROBE_METHOD_"))
}

func fill(res *ningv1.TargetResult, m ningv1.ProbeMethod, rtts []time.Duration, sent int) {
	res.Method = m
	res.Sent = uint32(sent)
	res.Received = uint32(len(rtts))
	res.RttMs = make([]float64, len(rtts))
	for i, d := range rtts {
		res.RttMs[i] = float64(d) / float64(time.Millisecond)
	}
	s := Summarise(res.RttMs)
	res.MinMs, res.AvgMs, res.MaxMs, res.StddevMs, res.P50Ms, res.P99Ms = s.Min, s.Avg, s.Max, s.Stddev, s.P50, s.P99
}

// Summary is the statistics of a set of RTT samples in ms.
type Summary struct{ Min, Avg, Max, Stddev, P50, P99 float64 }

// Summarise computes min, mean, max, population standard deviation and
// nearest-rank percentiles; all zero for no samples.
func Summarise(ms []float64) Summary {
	if len(ms) == 0 {
		return Summary{}
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	var sum float64
	for _, v := range s {
		sum += v
	}
	avg := sum / float64(len(s))
	var sq float64
	for _, v := range s {
		sq += (v - avg) * (v - avg)
	}
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return Summary{Min: s[0], Avg: avg, Max: s[len(s)-1], Stddev: math.Sqrt(sq / float64(len(s))), P50: rank(0.5), P99: rank(0.99)}
}

// Prober runs rounds over a fixed target list.
type Prober struct {
	Site, Node string
	Targets    []Target
	// Discover, when set, replaces Targets before every round (targets from
	// the Kubernetes API).
	Discover func(ctx context.Context) ([]Target, error)
	Options  Options
	// Measure, when set, measures one target in place of the package's
	// Measure (`ning demo --netns` wraps it to open the probe's sockets
	// inside a site's network namespace).
	Measure func(ctx context.Context, t Target, o Options) *ningv1.TargetResult
	// Load, when set, adds this node's load to each report.
	Load    *LoadReader
	Clock   clock.PassiveClock
	Metrics *Metrics // optional
	Log     *slog.Logger
}

// Round probes every target concurrently and returns the report. When
// Discover is set it refreshes Targets first; on a discovery error the last
// list is kept. Rounds of one Prober must not overlap.
func (p *Prober) Round(ctx context.Context) (*ningv1.LatencyReport, error) {
	if p.Discover != nil {
		ts, err := p.Discover(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, fmt.Errorf("probe round: %w", ctx.Err())
		case err != nil:
			p.Log.Warn("discovering targets: keeping the last list", "targets", len(p.Targets), "err", err)
		default:
			p.Targets = ts
		}
	}
	measure := p.Measure
	if measure == nil {
		measure = Measure
	}
	results := make([]*ningv1.TargetResult, len(p.Targets))
	started := p.Clock.Now()
	var wg sync.WaitGroup
	for i, t := range p.Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = measure(ctx, t, p.Options)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("probe round: %w", err)
	}
	r := &ningv1.LatencyReport{
		SourceSite: p.Site, SourceNode: p.Node, Time: timestamppb.New(p.Clock.Now()),
		Started: timestamppb.New(started), Targets: results, Method: commonMethod(results),
	}
	if p.Load != nil {
		l, err := p.Load.Read()
		if err != nil {
			p.Log.Warn("reading node load", "err", err)
		} else {
			r.Load = l
		}
	}
	if p.Metrics != nil {
		p.Metrics.observe(r)
	}
	return r, nil
}

// commonMethod is the method most targets used.
func commonMethod(rs []*ningv1.TargetResult) ningv1.ProbeMethod {
	counts := map[ningv1.ProbeMethod]int{}
	best := ningv1.ProbeMethod_PROBE_METHOD_UNSPECIFIED
	for _, r := range rs {
		if r.GetMethod() == ningv1.ProbeMethod_PROBE_METHOD_UNSPECIFIED {
			continue
		}
		counts[r.GetMethod()]++
		if counts[r.GetMethod()] > counts[best] || (counts[r.GetMethod()] == counts[best] && r.GetMethod() < best) {
			best = r.GetMethod()
		}
	}
	return best
}
