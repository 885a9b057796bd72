package netns

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/examples"
	"github.com/ning-edge/ning/internal/broker"
	"github.com/ning-edge/ning/internal/broker/brokertest"
	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/netem/netemtest"
	"github.com/ning-edge/ning/internal/source"
	"github.com/ning-edge/ning/internal/topology"
)

// Tolerances, in ms, of the store's RTT against the topology's. The
// delayer's own overhead is subtracted from each link, so on a quiet machine
// the difference is a few tenths of a millisecond; on a loaded two-CPU
// machine the userspace delayer and the probers wait for a CPU and single
// pairs read up to 1.5 ms high. A link wired to the wrong pair of sites
// would be off by several milliseconds.
const (
	rttTolerance     = 2.0 // any one ordered pair
	meanAbsTolerance = 1.0 // the mean of |difference| over all pairs
	// observations per ordered pair before the store is read: the EWMA
	// (α = 0.3) has then forgotten all but 3 % of the first round.
	observations = 10
)

// TestNetnsProbersThroughBroker builds the demo's lab for the built-in
// edge-city topology (7 namespaces, 21 links), runs the real prober of every
// site inside its namespace publishing to an embedded broker, feeds the
// store as the demo does, and checks every ordered site pair's RTT in the
// store against the topology. It needs root, iproute2, iptables and the
// kernel's NFQUEUE; without them it skips with the reason (it fails instead
// when NING_REQUIRE_NETNS=1).
func TestNetnsProbersThroughBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("network-namespace test skipped in -short (make test-netns runs it, as root)")
	}
	if err := Check(); err != nil {
		netemtest.Skip(t, "network-namespace test skipped: %v", err)
	}
	spec, err := topology.ParseSpec(examples.EdgeCity)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	netemtest.LockForTiming(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	b := brokertest.Start(t, broker.Config{Listen: "127.0.0.1:0", AllowAnonymous: true}, log)
	url := "mqtt://" + b.Addr()
	store := topology.NewStore(topology.Config{}, clock.RealClock{})
	src, err := source.NewMQTT(store, source.Config{}, clock.RealClock{}, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := mqtt.NewSubscriber(ctx, mqtt.Config{BrokerURL: url, ClientID: "store"}, mqtt.SubscriberOptions{}, src.Handle, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close(context.Background()) })

	sites, rtt := spec.SiteNames(), spec.Matrix()
	lab, err := Build(ctx, Config{Sites: sites, RTT: rtt, Log: log})
	if err != nil {
		if strings.Contains(err.Error(), "NFQUEUE") {
			netemtest.Skip(t, "network-namespace test skipped: %v", err)
		}
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, s := range sites {
		names[lab.Namespace(s)] = true
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, len(sites))
	for _, s := range sites {
		pub, err := mqtt.NewPublisher(runCtx, mqtt.Config{BrokerURL: url, ClientID: "probe-" + s}, mqtt.PublisherOptions{}, prometheus.NewRegistry(), log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pub.Close(context.Background()) })
		if got := len(lab.Targets(s)); got != len(sites)-1 {
			t.Errorf("site %s probes %d sites, want %d", s, got, len(sites)-1)
		}
		go func() { done <- lab.Run(runCtx, s, pub) }()
	}

	waitErr := waitObserved(ctx, store, sites)
	stop()
	for range sites {
		if err := <-done; err != nil {
			t.Errorf("prober: %v", err)
		}
	}
	if err := lab.Close(); err != nil {
		t.Errorf("closing the lab: %v", err)
	}
	if waitErr != nil {
		t.Errorf("%v", waitErr)
	}
	for n := range names {
		if _, err := os.Stat("/var/run/netns/" + n); err == nil {
			t.Errorf("namespace %s is still there after Close", n)
		}
	}

	var b2 strings.Builder
	var sum, sumAbs, worst float64
	pairs := 0
	fmt.Fprintf(&b2, "%-13s %-13s %9s %9s %7s %5s\n", "from", "to", "topology", "measured", "diff", "loss")
	for i, from := range sites {
		for j, to := range sites {
			if i == j {
				continue
			}
			l, ok := store.Link(from, to)
			if !ok || l.Observations == 0 {
				t.Errorf("%s -> %s: no measurement in the store", from, to)
				continue
			}
			d := l.RTTMs - rtt[i][j]
			pairs++
			sum += d
			sumAbs += math.Abs(d)
			worst = max(worst, math.Abs(d))
			fmt.Fprintf(&b2, "%-13s %-13s %6.1f ms %6.2f ms %+7.2f %4.0f%%\n", from, to, rtt[i][j], l.RTTMs, d, 100*l.Loss)
			if math.Abs(d) > rttTolerance {
				t.Errorf("%s -> %s: store RTT %.2f ms, topology %.0f ms (tolerance ±%.1f ms)", from, to, l.RTTMs, rtt[i][j], rttTolerance)
			}
			if l.Loss > 0.05 {
				t.Errorf("%s -> %s: loss %.0f %%, the links lose nothing", from, to, 100*l.Loss)
			}
		}
	}
	if pairs > 0 && sumAbs/float64(pairs) > meanAbsTolerance {
		t.Errorf("mean |store RTT - topology RTT| %.2f ms over %d pairs, want at most %.1f ms", sumAbs/float64(pairs), pairs, meanAbsTolerance)
	}
	if pairs > 0 {
		fmt.Fprintf(&b2, "%d ordered pairs: mean diff %+.2f ms, mean |diff| %.2f ms, worst |diff| %.2f ms\n", pairs, sum/float64(pairs), sumAbs/float64(pairs), worst)
	}
	t.Log("\nstore RTT (EWMA of the probers' means) vs topology:\n" + b2.String())
}

// waitObserved waits until every ordered pair of sites has the wanted number
// of measurements in the store.
func waitObserved(ctx context.Context, store *topology.Store, sites []string) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		least := int64(math.MaxInt64)
		for _, from := range sites {
			for _, to := range sites {
				if from != to {
					l, _ := store.Link(from, to)
					least = min(least, l.Observations)
				}
			}
		}
		if least >= observations {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d measurements of every pair (the least measured has %d): %w", observations, least, ctx.Err())
		case <-tick.C:
		}
	}
}
