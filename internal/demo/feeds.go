package demo

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/discover"
)

// scenario is the traffic entering at each site, which the demo changes as
// it goes. It is safe for concurrent use.
type scenario struct {
	mu      sync.Mutex
	traffic map[string]float64
}

func (s *scenario) set(t map[string]float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.traffic = map[string]float64{}
	for k, v := range t {
		s.traffic[k] = v
	}
}

func (s *scenario) get() map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]float64, len(s.traffic))
	for k, v := range s.traffic {
		out[k] = v
	}
	return out
}

// trafficSource stands in for Prometheus behind the site gateways: it
// reports each gateway node's request rate from the scenario, with 3 %
// noise. ning discover takes it as it takes any discover.Source.
type trafficSource struct {
	scenario *scenario
	gateways map[string]string // site -> gateway node
	window   time.Duration
	mu       sync.Mutex
	rng      *rand.Rand
}

var _ discover.Source = (*trafficSource)(nil)

func (t *trafficSource) Name() string          { return "demo" }
func (t *trafficSource) Window() time.Duration { return t.window }

func (t *trafficSource) Sample(_ context.Context, now time.Time) (discover.Sample, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rates := map[string]float64{}
	for site, rps := range t.scenario.get() {
		node, ok := t.gateways[site]
		if !ok || rps <= 0 {
			continue
		}
		rates[node] = math.Max(0, rps*(1+0.03*t.rng.NormFloat64()))
	}
	return discover.Sample{Source: "demo", At: now, Window: t.window, Rates: rates}, nil
}

// latencyPublisher is what a simulated prober publishes to.
type latencyPublisher interface {
	PublishLatency(r *ningv1.LatencyReport) error
}

// prober is one site's simulated `ning probe`: every period it reports the
// RTT to every other site, from the topology with realistic noise (queueing
// only ever adds delay: a few per cent plus a tenth of a millisecond, and a
// rare spike of up to half the RTT).
type prober struct {
	site, node string
	targets    map[string]float64 // site -> true RTT in ms
	pub        latencyPublisher
	period     time.Duration
	rng        *rand.Rand
	log        *slog.Logger
}

func (p *prober) run(ctx context.Context) {
	t := time.NewTicker(p.period)
	defer t.Stop()
	for {
		if err := p.pub.PublishLatency(p.report(time.Now())); err != nil {
			p.log.Warn("simulated prober", "site", p.site, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *prober) report(now time.Time) *ningv1.LatencyReport {
	r := &ningv1.LatencyReport{SourceSite: p.site, SourceNode: p.node, Time: timestamppb.New(now), Method: ningv1.ProbeMethod_PROBE_METHOD_UDP_ECHO}
	for site, rtt := range p.targets {
		const n = 5
		samples := make([]float64, n)
		sum, lo, hi := 0.0, math.Inf(1), 0.0
		for i := range samples {
			v := rtt*(1+0.03*math.Abs(p.rng.NormFloat64())) + 0.1*math.Abs(p.rng.NormFloat64())
			if p.rng.Float64() < 0.01 {
				v += rtt * 0.5 * p.rng.Float64()
			}
			samples[i] = v
			sum += v
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		r.Targets = append(r.Targets, &ningv1.TargetResult{
			Site: site, Node: fmt.Sprintf("%s-0", site), Method: r.Method,
			Sent: n, Received: n, RttMs: samples, MinMs: lo, AvgMs: sum / n, MaxMs: hi,
		})
	}
	return r
}
