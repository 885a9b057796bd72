package discover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ning-edge/ning/internal/httpserve"
	"github.com/ning-edge/ning/internal/mqtt"
)

// RunConfig is everything `ning discover` runs with; the command builds it
// from its flags and calls Run.
type RunConfig struct {
	Client kubernetes.Interface
	// Source is "prometheus" (Prometheus options) or "otlp" (OTLP options,
	// the receiver listening on OTLPListen).
	Source     string
	Prometheus PrometheusOptions
	OTLP       OTLPOptions
	OTLPListen string
	Job        JobOptions
	// Owner, KIND/NAME, owns the probe Jobs (see ResolveOwner).
	Owner   string
	Cluster ClusterOptions
	// DryRun publishes nothing and creates no Job; otherwise reports go to
	// the broker of MQTT.
	DryRun    bool
	MQTT      mqtt.Config
	QueueSize int
	// Once decides once (waiting up to Wait for the rate window); otherwise
	// a step runs every Interval until ctx ends.
	Once     bool
	Wait     time.Duration
	Interval time.Duration
	// Listen, when set (and not Once), serves /healthz and /metrics.
	Listen string
	// OnResult receives each result (warming up or decided).
	OnResult func(*Result) error
	Log      *slog.Logger
}

// Run runs discovery until ctx ends, or for one decision with Once.
func Run(ctx context.Context, c RunConfig) error {
	log := c.Log
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := NewMetrics(reg)
	if err != nil {
		return err
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	g, gctx := errgroup.WithContext(runCtx)
	var src Source
	switch c.Source {
	case "prometheus":
		if src, err = NewPrometheus(c.Prometheus); err != nil {
			return fmt.Errorf("--query: %w", err)
		}
	case "otlp":
		o := c.OTLP
		o.Report = metrics.Reporter(log)
		recv := NewOTLP(o)
		ln, err := httpserve.Listen("otlp-listen", c.OTLPListen)
		if err != nil {
			return err
		}
		log.Info("receiving OTLP metrics", "addr", ln.Addr().String(), "metric", o.Metric)
		g.Go(func() error { return ServeOTLP(gctx, ln, recv) })
		src = recv
	default:
		return fmt.Errorf("--source %q: want prometheus or otlp", c.Source)
	}
	stop := func(err error) error { cancelRun(); return errors.Join(err, g.Wait()) }
	if c.Owner != "" {
		if c.Job.Owner, err = ResolveOwner(ctx, c.Client, c.Job.Namespace, c.Owner); err != nil {
			return stop(err)
		}
	}
	cfg := Config{Client: c.Client, Source: src, Job: c.Job, DryRun: c.DryRun, Log: log, Metrics: metrics, Cluster: c.Cluster}
	closePub := func() error { return nil }
	if !c.DryRun {
		pub, closeIt, err := mqtt.StartPublisher(ctx, c.MQTT, mqtt.PublisherOptions{QueueSize: c.QueueSize}, reg, log)
		if err != nil {
			return stop(err)
		}
		cfg.Publisher, closePub = pub, closeIt
	}
	d, err := New(cfg)
	if err != nil {
		return errors.Join(stop(err), closePub())
	}
	if c.Once {
		res, err := d.Once(gctx, c.Wait, time.Second)
		err = stop(err) // stops the OTLP receiver
		if res != nil && c.OnResult != nil {
			err = errors.Join(err, c.OnResult(res))
		}
		return errors.Join(err, closePub())
	}
	started := time.Now()
	var ln net.Listener
	if c.Listen != "" {
		if ln, err = httpserve.Listen("listen", c.Listen); err != nil {
			return errors.Join(stop(err), closePub())
		}
		log.Info("serving /healthz and /metrics", "addr", ln.Addr().String())
	}
	mux := httpserve.OpsMux(reg, func() error { return d.Healthy(started, c.Interval) })
	g.Go(func() error {
		return httpserve.RunWith(gctx, "discover", ln, mux, httpserve.Options{}, log, func(ctx context.Context) error {
			return d.Run(ctx, c.Interval, func(r *Result) {
				if c.OnResult == nil {
					return
				}
				if err := c.OnResult(r); err != nil {
					log.Warn("printing decision", "err", err)
				}
			})
		})
	})
	return errors.Join(g.Wait(), closePub())
}

// ResolveOwner turns KIND/NAME into an owner reference (not a controller
// reference, so a CronJob does not count the probe Jobs as its own runs).
func ResolveOwner(ctx context.Context, c kubernetes.Interface, ns, spec string) (*metav1.OwnerReference, error) {
	kind, name, ok := strings.Cut(spec, "/")
	if !ok || name == "" {
		return nil, fmt.Errorf("--owner %q: want KIND/NAME, e.g. cronjob/ning-discover", spec)
	}
	var (
		meta       metav1.Object
		apiVersion string
		err        error
	)
	switch strings.ToLower(kind) {
	case "cronjob":
		apiVersion, kind = "batch/v1", "CronJob"
		meta, err = c.BatchV1().CronJobs(ns).Get(ctx, name, metav1.GetOptions{})
	case "job":
		apiVersion, kind = "batch/v1", "Job"
		meta, err = c.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	case "deployment":
		apiVersion, kind = "apps/v1", "Deployment"
		meta, err = c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	default:
		return nil, fmt.Errorf("--owner %q: kind must be cronjob, job or deployment", spec)
	}
	if err != nil {
		return nil, fmt.Errorf("--owner %s: %w", spec, err)
	}
	return &metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: meta.GetName(), UID: meta.GetUID()}, nil
}
