// Package netns gives `ning demo --netns` real RTTs: one network namespace
// per site, a veth link between every pair of sites whose emulated WAN delay
// (internal/netem's NFQUEUE delayer) reproduces the topology's RTT,
// and one real prober per site (internal/probe's Prober and Loop, ICMP echo
// on datagram sockets) measuring the other sites from inside its namespace.
//
// Only the probe sockets live in a site's namespace: each measurement runs on
// a thread moved into it (netem.Lab.Do), and the prober's MQTT client
// stays in the root namespace, where the demo's broker listens on 127.0.0.1.
package netns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/clock"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/netem"
	"github.com/ning-edge/ning/internal/probe"
)

// DefaultOverhead is what the NFQUEUE delayer adds to a round trip on its
// own (two trips through user space: TestDelayerRoundTrip and
// TestNetnsEndToEnd measure +0.6 to +0.8 ms). Each link's configured delay is
// the topology's RTT less this, so that what the probers measure is the
// topology's figure.
const DefaultOverhead = 700 * time.Microsecond

// MaxSites is the largest topology a full mesh fits in: a lab holds at most
// 250 links (one /24 each), and n sites need n(n-1)/2.
const MaxSites = 22

// namespacePrefix starts the name of every namespace a demo creates; the
// process id follows, so a later run can tell a killed run's leftovers.
const namespacePrefix = "ning-demo-"

// NamespacePrefix starts the names of the namespaces of the demo whose
// process id is owner.
func NamespacePrefix(owner int) string { return fmt.Sprintf("%s%d-", namespacePrefix, owner) }

// Config describes the lab.
type Config struct {
	// Sites and RTT (ms; +Inf: no link) in the same order, as
	// topology.Spec's SiteNames and Matrix.
	Sites []string
	RTT   [][]float64
	// Overhead is subtracted from each link's delay; default
	// DefaultOverhead, negative for none.
	Overhead time.Duration
	// Probe tunes every round; default 5 ICMP echoes 100 ms apart with a 1 s
	// timeout, on datagram sockets.
	Probe probe.Options
	// Period between rounds; default 1 s (plus up to 20 % jitter).
	Period time.Duration
	// Owner is the process id in the namespaces' names
	// (ning-demo-OWNER-SITE): the demo's, also when a helper process builds
	// them. Default this process.
	Owner int
	Log   *slog.Logger
}

func (c *Config) defaults() error {
	n := len(c.Sites)
	if n < 2 {
		return errors.New("netns: at least two sites are needed")
	}
	if n > MaxSites {
		return fmt.Errorf("netns: %d sites: a full mesh of links fits at most %d", n, MaxSites)
	}
	if len(c.RTT) != n {
		return fmt.Errorf("netns: %d sites but an RTT matrix of %d rows", n, len(c.RTT))
	}
	for i, row := range c.RTT {
		if len(row) != n {
			return fmt.Errorf("netns: RTT row %d (%s) has %d entries, want %d", i, c.Sites[i], len(row), n)
		}
	}
	switch {
	case c.Overhead == 0:
		c.Overhead = DefaultOverhead
	case c.Overhead < 0:
		c.Overhead = 0
	}
	if c.Probe.Count == 0 {
		c.Probe.Count = 5
	}
	if c.Probe.Interval == 0 {
		c.Probe.Interval = 100 * time.Millisecond
	}
	if c.Probe.Timeout == 0 {
		c.Probe.Timeout = time.Second
	}
	if len(c.Probe.Methods) == 0 {
		// The namespaces' kernels answer ICMP echo: no responder to run.
		// Datagram sockets, not raw ones: the kernel hands each prober only
		// its own replies.
		c.Probe.Methods = []ningv1.ProbeMethod{ningv1.ProbeMethod_PROBE_METHOD_ICMP_UDP}
	}
	if c.Period == 0 {
		c.Period = time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Owner <= 0 {
		c.Owner = os.Getpid()
	}
	return nil
}

// Check reports, without changing anything, what this process lacks to build
// a lab: root, iproute2 or iptables. The kernel's NFQUEUE support shows only
// when the first link is shaped; Build names it then.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("--netns needs root (network namespaces, veth links and iptables NFQUEUE rules): run it with sudo, or leave --netns out for simulated probers")
	}
	if _, _, err := netem.Tools(); err != nil {
		return fmt.Errorf("--netns: %w", err)
	}
	return nil
}

// Lab is the running set of site namespaces and their links.
type Lab struct {
	cfg     Config
	lab     *netem.Lab
	targets map[string][]probe.Target // site -> the other sites' addresses
}

// Build checks the prerequisites, removes namespaces left by a killed demo,
// creates a namespace per site and links every pair with an RTT. On error
// everything it created is removed again. Close removes the lab.
func Build(ctx context.Context, cfg Config) (l *Lab, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := Check(); err != nil {
		return nil, err
	}
	removeStale(ctx, cfg.Log)
	nl, err := netem.NewLab(NamespacePrefix(cfg.Owner))
	if err != nil {
		return nil, fmt.Errorf("--netns: %w", err)
	}
	l = &Lab{cfg: cfg, lab: nl, targets: map[string][]probe.Target{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()
	t0 := time.Now()
	for _, s := range cfg.Sites {
		if err := nl.AddNamespace(ctx, s); err != nil {
			return l, fmt.Errorf("--netns: namespace for site %s: %w", s, err)
		}
	}
	links := 0
	for i, a := range cfg.Sites {
		for j := i + 1; j < len(cfg.Sites); j++ {
			b := cfg.Sites[j]
			rtt := linkRTT(cfg.RTT[i][j], cfg.RTT[j][i])
			if math.IsInf(rtt, 1) {
				continue
			}
			delay := max(time.Duration(rtt*float64(time.Millisecond))-cfg.Overhead, 0)
			addrA, addrB, err := nl.Link(ctx, a, b, netem.Shape{Delay: delay})
			if err != nil {
				if strings.Contains(strings.ToLower(err.Error()), "nfqueue") {
					return l, fmt.Errorf("--netns: no NFQUEUE support (kernel modules nfnetlink_queue and xt_NFQUEUE): link %s-%s: %w", a, b, err)
				}
				return l, fmt.Errorf("--netns: link %s-%s: %w", a, b, err)
			}
			l.targets[a] = append(l.targets[a], probe.Target{Site: b, Node: b + "-0", Address: addrB})
			l.targets[b] = append(l.targets[b], probe.Target{Site: a, Node: a + "-0", Address: addrA})
			links++
		}
	}
	cfg.Log.Info("network namespaces up", "sites", len(cfg.Sites), "links", links, "seconds", time.Since(t0).Seconds())
	return l, nil
}

// linkRTT is the RTT of a link: the larger direction when the two differ
// (both directions share one veth pair), +Inf when neither is known.
func linkRTT(ab, ba float64) float64 {
	switch {
	case math.IsInf(ab, 1) || math.IsNaN(ab):
		return ba
	case math.IsInf(ba, 1) || math.IsNaN(ba):
		return ab
	}
	return max(ab, ba)
}

// Namespace returns the name of a site's namespace (`ip netns exec NAME ...`).
func (l *Lab) Namespace(site string) string { return l.lab.Namespace(site) }

// Targets returns the addresses a site's prober measures.
func (l *Lab) Targets(site string) []probe.Target { return l.targets[site] }

// Prober returns the real prober of a site: its probe sockets open inside the
// site's namespace.
func (l *Lab) Prober(site string) *probe.Prober {
	return &probe.Prober{
		Site: site, Node: site + "-0", Targets: l.targets[site], Options: l.cfg.Probe,
		Measure: func(ctx context.Context, t probe.Target, o probe.Options) *ningv1.TargetResult {
			var r *ningv1.TargetResult
			if err := l.lab.Do(site, func() error {
				r = probe.Measure(ctx, t, o)
				return nil
			}); err != nil {
				return &ningv1.TargetResult{Site: t.Site, Node: t.Node, Address: t.Address, Sent: uint32(max(o.Count, 1)), Error: err.Error()}
			}
			return r
		},
		Clock: clock.RealClock{},
		Log:   l.cfg.Log.With("component", "probe", "site", site),
	}
}

// Run runs a site's prober, publishing every round to pub, until ctx ends.
func (l *Lab) Run(ctx context.Context, site string, pub probe.Publisher) error {
	loop := &probe.Loop{Prober: l.Prober(site), Publisher: pub, Period: l.cfg.Period, Jitter: 0.2,
		Log: l.cfg.Log.With("component", "probe", "site", site)}
	if err := loop.Run(ctx); err != nil {
		return fmt.Errorf("prober %s: %w", site, err)
	}
	return nil
}

// Close stops the delayers and deletes the namespaces, with their links,
// addresses and iptables rules. Stop the probers first.
func (l *Lab) Close() error {
	if err := l.lab.Close(); err != nil {
		return fmt.Errorf("removing the network namespaces: %w", err)
	}
	return nil
}

// removeStale deletes the namespaces of demos whose process is gone (killed
// before it could clean up).
func removeStale(ctx context.Context, log *slog.Logger) {
	paths, err := filepath.Glob("/var/run/netns/" + namespacePrefix + "*")
	if err != nil {
		return
	}
	for _, p := range paths {
		name := filepath.Base(p)
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(name, namespacePrefix), "-", 2)[0])
		if err != nil || pid == os.Getpid() || pid == os.Getppid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // that demo still runs
		}
		if err := deleteNamespace(ctx, name); err != nil {
			log.Warn("removing a namespace left by an earlier demo", "namespace", name, "err", err)
			continue
		}
		log.Info("removed a namespace left by an earlier demo", "namespace", name)
	}
}

func deleteNamespace(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}
