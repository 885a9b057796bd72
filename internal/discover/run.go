package discover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
)

// Source measures per-node request rates.
type Source interface {
	Name() string
	Window() time.Duration
	Sample(ctx context.Context, now time.Time) (Sample, error)
}

// TrafficPublisher takes TrafficReports (internal/mqtt.Publisher).
type TrafficPublisher interface {
	PublishTraffic(r *ningv1.TrafficReport) error
}

// Config wires a Discoverer.
type Config struct {
	Client  kubernetes.Interface
	Cluster ClusterOptions
	Source  Source
	// Publisher receives each decision's TrafficReport; nil publishes nothing.
	Publisher TrafficPublisher
	Job       JobOptions
	// DryRun builds the Job but neither creates it nor publishes.
	DryRun  bool
	Clock   clock.PassiveClock
	Log     *slog.Logger
	Metrics *Metrics
}

// Result is one step's outcome.
type Result struct {
	Decision Decision
	// Warming names nodes whose rates do not cover the window yet.
	Warming []string
	// Job is the probe Job: the one that would be created (dry run), or the
	// one that covers the busiest site. Nil when none is needed.
	Job        *batchv1.Job
	JobCreated bool
	// Note says why there is no Job.
	Note string
}

// Discoverer takes decisions from a Source and acts on them.
type Discoverer struct {
	cfg Config

	mu       sync.Mutex
	last     *Result
	lastStep time.Time
}

// ErrWarmingUp is returned by Once when the rate window never filled.
var ErrWarmingUp = errors.New("traffic figures are still warming up")

// New returns a Discoverer.
func New(cfg Config) (*Discoverer, error) {
	if cfg.Client == nil || cfg.Source == nil || cfg.Metrics == nil || cfg.Log == nil {
		return nil, errors.New("discover: Client, Source, Metrics and Log are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Job.SiteLabel == "" {
		cfg.Job.SiteLabel = cfg.Cluster.SiteLabel
	}
	return &Discoverer{cfg: cfg}, nil
}

// Last returns the last decision taken from valid data, or nil.
func (d *Discoverer) Last() *Result {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// Step takes one decision. Bad data is logged and counted, and returns an
// error with the previous decision untouched. While the figures are warming
// up it returns a Result with Decision.WarmingUp set and acts on nothing.
func (d *Discoverer) Step(ctx context.Context) (*Result, error) {
	d.mu.Lock()
	d.lastStep = d.cfg.Clock.Now()
	d.mu.Unlock()
	m, log := d.cfg.Metrics, d.cfg.Log
	cluster, err := LoadCluster(ctx, d.cfg.Client, d.cfg.Cluster)
	if err != nil {
		err = &DataError{Reason: ReasonKubernetes, Detail: "discovering gateways", Err: err}
		m.report(log, err, ReasonKubernetes)
		return nil, err
	}
	if len(cluster.GatewaySites) == 0 {
		log.Warn("no gateway pods found; traffic from any cluster node still counts", "selector", d.cfg.Cluster.GatewaySelector)
	}
	s, err := d.cfg.Source.Sample(ctx, d.cfg.Clock.Now())
	if err != nil {
		m.report(log, err, ReasonNoData)
		return nil, fmt.Errorf("sampling %s: %w", d.cfg.Source.Name(), err)
	}
	if s.WarmingUp && len(s.Rates) == 0 {
		m.WarmingUp.Set(1)
		log.Info("traffic figures are warming up: no rate covers its window yet; no decision", "source", s.Source, "window", s.Window, "nodes", s.Warming)
		return &Result{Decision: Decision{Source: s.Source, At: s.At, Window: s.Window, WarmingUp: true, Sites: map[string]float64{}}, Warming: s.Warming}, nil
	}
	dec, dropped, err := Decide(s, cluster)
	for _, e := range dropped {
		m.Reporter(log)(e)
	}
	if err != nil {
		m.report(log, err, ReasonBadRate)
		return nil, err
	}
	res := &Result{Decision: dec, Warming: s.Warming}
	if dec.WarmingUp {
		m.WarmingUp.Set(1)
		log.Info("traffic figures are warming up: the rate window is not full yet, so rates are low; no decision until it is",
			"source", s.Source, "window", s.Window, "nodes", s.Warming, "sites", dec.Sites)
		return res, nil
	}
	m.WarmingUp.Set(0)

	job, note := BuildProbeJob(dec, cluster, d.cfg.Job)
	res.Job, res.Note = job, note
	if !d.cfg.DryRun {
		if d.cfg.Publisher != nil {
			if err := d.cfg.Publisher.PublishTraffic(TrafficReport(dec)); err != nil {
				m.report(log, err, ReasonPublish)
			}
		}
		if job != nil {
			got, created, err := EnsureJob(ctx, d.cfg.Client, job, d.cfg.Job.withDefaults().Keep, log)
			if err != nil {
				m.report(log, &DataError{Reason: ReasonJob, Detail: "starting the probe job", Err: err}, ReasonJob)
			} else {
				res.Job, res.JobCreated = got, created
				if created {
					m.JobsCreated.Inc()
				}
			}
		}
	}
	if job == nil {
		log.Info("no probe job", "why", note)
	}
	m.Decisions.Inc()
	m.LastSuccess.Set(float64(dec.At.UnixNano()) / 1e9)
	m.SiteRate.Reset()
	m.Busiest.Reset()
	for site, v := range dec.Sites {
		m.SiteRate.WithLabelValues(site).Set(v)
	}
	if dec.Busiest != "" {
		m.Busiest.WithLabelValues(dec.Busiest).Set(1)
	}
	log.Info("traffic decision", "source", dec.Source, "busiest", dec.Busiest, "sites", dec.Sites, "dryRun", d.cfg.DryRun)
	d.mu.Lock()
	d.last = res
	d.mu.Unlock()
	return res, nil
}

// Once steps until the figures are no longer warming up, polling every
// poll, for at most wait. No data yet (an OTLP receiver that just started, a
// Prometheus that has not scraped) is waited for too; other bad data ends it
// with the error at once.
func (d *Discoverer) Once(ctx context.Context, wait, poll time.Duration) (*Result, error) {
	deadline := d.cfg.Clock.Now().Add(wait)
	for {
		res, err := d.Step(ctx)
		var de *DataError
		if err != nil && (!errors.As(err, &de) || (de.Reason != ReasonNoData && de.Reason != ReasonEmptyResult)) {
			return nil, err
		}
		if err == nil && !res.Decision.WarmingUp {
			return res, nil
		}
		if !d.cfg.Clock.Now().Before(deadline) {
			if err != nil {
				return nil, err
			}
			return res, ErrWarmingUp
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("waiting for the rate window: %w", ctx.Err())
		case <-time.After(poll):
		}
	}
}

// Run steps every interval until ctx ends, handing each result (warming up
// or decided) to onResult. Errors are logged and counted by Step; the loop
// goes on with the previous decision.
func (d *Discoverer) Run(ctx context.Context, interval time.Duration, onResult func(*Result)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if res, err := d.Step(ctx); err == nil && onResult != nil {
			onResult(res)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Healthy is nil while steps keep happening: the last began within three
// intervals (a step that fails on bad data still counts: the remedy for a
// down Prometheus is not restarting discovery).
func (d *Discoverer) Healthy(started time.Time, interval time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cfg.Clock.Now()
	last := d.lastStep
	if last.IsZero() {
		last = started
	}
	if age := now.Sub(last); age > 3*interval {
		return fmt.Errorf("no discovery step for %s (interval %s)", age.Round(time.Second), interval)
	}
	return nil
}

// TrafficReport turns a decision into the wire message, sites by name.
func TrafficReport(d Decision) *ningv1.TrafficReport {
	r := &ningv1.TrafficReport{Source: d.Source, Time: timestamppb.New(d.At), WindowSeconds: d.Window.Seconds()}
	sites := sortedKeys(d.Sites)
	sort.Strings(sites)
	for _, s := range sites {
		r.Sites = append(r.Sites, &ningv1.SiteTraffic{Site: s, RequestsPerSecond: d.Sites[s]})
	}
	return r
}

// Output is the -o json shape.
type Output struct {
	Sites         map[string]float64 `json:"sites"`
	Busiest       string             `json:"busiest"`
	Job           *batchv1.Job       `json:"job"`
	JobCreated    bool               `json:"jobCreated"`
	Note          string             `json:"note,omitempty"`
	Source        string             `json:"source"`
	Time          time.Time          `json:"time"`
	WindowSeconds float64            `json:"windowSeconds"`
	WarmingUp     bool               `json:"warmingUp"`
	Warming       []string           `json:"warmingNodes,omitempty"`
}

// NewOutput is the JSON view of a result.
func NewOutput(r *Result) Output {
	sites := r.Decision.Sites
	if sites == nil {
		sites = map[string]float64{}
	}
	return Output{Sites: sites, Busiest: r.Decision.Busiest, Job: r.Job, JobCreated: r.JobCreated, Note: r.Note,
		Source: r.Decision.Source, Time: r.Decision.At.UTC(), WindowSeconds: r.Decision.Window.Seconds(),
		WarmingUp: r.Decision.WarmingUp, Warming: r.Warming}
}
