package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/protobuf/encoding/protojson"
	"k8s.io/utils/clock"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/httpserve"
	"github.com/ning-edge/ning/internal/mqtt"
)

// Config is everything `ning probe` runs with; the command builds it from
// its flags and calls Run.
type Config struct {
	// Site and Node are this prober's; with Discovery, an empty Site is
	// Node's site as the API labels it.
	Site, Node string
	// Targets are the static targets; Discovery, when set, lists them from
	// the Kubernetes API before every round instead.
	Targets   []Target
	Discovery *Discovery
	Options   Options
	// ProcRoot is where /proc is read for the node's load and PSI.
	ProcRoot string
	// Once runs one round, writes its report to Out as JSON and, with
	// Publish, publishes it; otherwise rounds run every Period (plus up to
	// Jitter × Period) until ctx ends.
	Once, Publish bool
	Out           io.Writer
	Period        time.Duration
	Jitter        float64
	MQTT          mqtt.Config
	QueueSize     int
	// Listen, when set, serves /healthz, /metrics and /scores.
	Listen string
	Log    *slog.Logger
}

// Run runs the prober until ctx ends (or for one round with Once).
func Run(ctx context.Context, c Config) error {
	log := c.Log
	if c.Discovery != nil && c.Site == "" {
		site, err := c.Discovery.Site(ctx, c.Node)
		if err != nil {
			return fmt.Errorf("--site not given: %w", err)
		}
		c.Site, c.Discovery.SelfSite = site, site
	}
	if _, err := mqtt.LatencyTopic(c.Site); err != nil {
		return fmt.Errorf("--site: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := NewMetrics(reg)
	if err != nil {
		return err
	}
	p := &Prober{Site: c.Site, Node: c.Node, Targets: c.Targets, Options: c.Options,
		Load: NewLoadReader(c.ProcRoot, log), Clock: clock.RealClock{}, Metrics: metrics, Log: log}
	if c.Discovery != nil {
		p.Discover = c.Discovery.Targets
	}
	var r *ningv1.LatencyReport
	if c.Once {
		// Prime the CPU counters so the report carries a real utilisation.
		if _, err := p.Load.Read(); err != nil {
			log.Warn("reading node load", "err", err)
		}
		if r, err = p.Round(ctx); err != nil {
			return err
		}
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(r)
		if err != nil {
			return fmt.Errorf("encoding report: %w", err)
		}
		if _, err := fmt.Fprintln(c.Out, string(b)); err != nil {
			return err
		}
		if !c.Publish {
			return nil
		}
	}
	pub, closePub, err := mqtt.StartPublisher(ctx, c.MQTT, mqtt.PublisherOptions{QueueSize: c.QueueSize}, reg, log)
	if err != nil {
		return err
	}
	if c.Once {
		return errors.Join(pub.PublishLatency(r), closePub())
	}
	scores := NewScores(c.Node, 0.3)
	loop := &Loop{Prober: p, Publisher: pub, Scores: scores, Period: c.Period, Jitter: c.Jitter, Log: log}
	started := time.Now()
	roundTime := time.Duration(c.Options.Count-1)*c.Options.Interval + c.Options.Timeout*time.Duration(len(c.Options.Methods))
	mux := httpserve.OpsMux(reg, func() error { return loop.Healthy(started, roundTime) })
	mux.Handle("GET /scores", scores)
	var ln net.Listener
	if c.Listen != "" {
		if ln, err = httpserve.Listen("listen", c.Listen); err != nil {
			return errors.Join(err, closePub())
		}
		log.Info("serving /healthz, /metrics, /scores", "addr", ln.Addr().String())
	}
	return errors.Join(httpserve.RunWith(ctx, "probe", ln, mux, httpserve.Options{}, log, loop.Run), closePub())
}
