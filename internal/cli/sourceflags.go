package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/source"
	"github.com/ning-edge/ning/internal/topology"
)

// sourceOptions are the flags of every command that reads the topology
// store (scheduler, extender, rescheduler, dashboard, status): where RTTs,
// traffic and loads come from, and how long they stay valid. The component
// starts them (source.Start).
type sourceOptions struct {
	latencyFile   *string
	mqttEnabled   bool
	mqtt          mqttFlags
	goldpingerURL string
	scoresURLs    []string
	pollInterval  time.Duration
	pollTimeout   time.Duration
	siteLabel     string
	ttl           time.Duration
	alpha         float64
	crossCheck    string
	maxSites      int
}

func (o *sourceOptions) AddFlags(fs *pflag.FlagSet) {
	o.latencyFile = source.LatencyFileFlag(fs)
	fs.BoolVar(&o.mqttEnabled, "mqtt", false, "subscribe to latency and traffic reports on the MQTT broker")
	o.mqtt.add(fs)
	fs.StringVar(&o.goldpingerURL, "goldpinger-url", "", "poll RTTs from the `URL` of a Goldpinger's /check_all, e.g. http://goldpinger.goldpinger:8080/check_all")
	fs.StringSliceVar(&o.scoresURLs, "scores-url", nil, "poll RTTs from the `URL` of a prober's /scores (ning probe; seed 004's shape); repeat or comma-separate for several probers")
	fs.DurationVar(&o.pollInterval, "poll-interval", 30*time.Second, "how often --goldpinger-url and --scores-url are polled")
	fs.DurationVar(&o.pollTimeout, "poll-timeout", 10*time.Second, "time limit of one poll of --goldpinger-url or --scores-url")
	fs.StringVar(&o.siteLabel, "site-label", topology.DefaultSiteLabel, "node label whose value names a node's site (a node without it is a site of its own)")
	fs.DurationVar(&o.ttl, "data-ttl", topology.DefaultTTL, "how long a measured RTT, load or traffic figure stays valid")
	fs.Float64Var(&o.alpha, "ewma-alpha", topology.DefaultAlpha, "weight of a new RTT or CPU observation in the moving average (0..1]")
	fs.StringVar(&o.crossCheck, "rtt-cross-check", topology.CrossCheckFlag, "an MQTT RTT that other sites' measurements make implausible: flag (count, log, keep), reject or off")
	fs.IntVar(&o.maxSites, "max-sites", topology.DefaultMaxSites, "most sites the store holds data for; reports naming a new site past it are rejected (reason too_many_sites)")
}

// polled reports whether an HTTP source is given: those need the cluster's
// nodes to map the addresses and host names they report to sites.
func (o *sourceOptions) polled() bool { return o.goldpingerURL != "" || len(o.scoresURLs) > 0 }

// Validate checks the source flags without touching the network or a file.
func (o *sourceOptions) Validate() error {
	var errs []error
	if o.alpha <= 0 || o.alpha > 1 {
		errs = append(errs, fmt.Errorf("--ewma-alpha %v: want a value in (0, 1]", o.alpha))
	}
	if o.ttl <= 0 {
		errs = append(errs, fmt.Errorf("--data-ttl %v: want a positive duration", o.ttl))
	}
	if o.siteLabel == "" {
		errs = append(errs, errors.New("--site-label: want a label key"))
	}
	if o.maxSites <= 0 {
		errs = append(errs, fmt.Errorf("--max-sites %d: want a positive number", o.maxSites))
	}
	if _, err := (topology.CrossCheck{Mode: o.crossCheck}).WithDefaults(); err != nil {
		errs = append(errs, fmt.Errorf("--rtt-cross-check: %w", err))
	}
	if o.polled() {
		if o.pollInterval <= 0 {
			errs = append(errs, fmt.Errorf("--poll-interval %v: want a positive duration", o.pollInterval))
		}
		if o.pollTimeout <= 0 {
			errs = append(errs, fmt.Errorf("--poll-timeout %v: want a positive duration", o.pollTimeout))
		}
	}
	if o.goldpingerURL != "" {
		if err := checkHTTPURL(o.goldpingerURL); err != nil {
			errs = append(errs, fmt.Errorf("--goldpinger-url: %w", err))
		}
	}
	for _, u := range o.scoresURLs {
		if err := checkHTTPURL(u); err != nil {
			errs = append(errs, fmt.Errorf("--scores-url: %w", err))
		}
	}
	return errors.Join(errs...)
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an http:// or https:// URL", s)
	}
	return nil
}

// storeConfig is --ewma-alpha and --data-ttl.
func (o *sourceOptions) storeConfig() topology.Config {
	return topology.Config{Alpha: o.alpha, TTL: o.ttl, MaxSites: o.maxSites}
}

// store returns an empty store of storeConfig.
func (o *sourceOptions) store() *topology.Store {
	return topology.NewStore(o.storeConfig(), clock.RealClock{})
}

// Config returns what source.Start runs with. client maps the polled
// sources' nodes to sites (nil: only without --goldpinger-url and
// --scores-url); the sources' metrics go to reg.
func (o *sourceOptions) Config(client kubernetes.Interface, reg prometheus.Registerer, log *slog.Logger) (source.Sources, error) {
	s := source.Sources{LatencyFile: *o.latencyFile, GoldpingerURL: o.goldpingerURL, ScoresURLs: o.scoresURLs,
		PollInterval: o.pollInterval, PollTimeout: o.pollTimeout, SiteLabel: o.siteLabel,
		CrossCheck: topology.CrossCheck{Mode: o.crossCheck}, Client: client, Registerer: reg, Log: log}
	if o.mqttEnabled {
		c, err := o.mqtt.config()
		if err != nil {
			return source.Sources{}, err
		}
		s.MQTT = &c
	}
	if s.Polled() && client == nil {
		return source.Sources{}, errors.New("--goldpinger-url and --scores-url need the Kubernetes API (to map node addresses to sites)")
	}
	return s, nil
}

// reader is what a command that reads the store builds first (extender,
// rescheduler, dashboard, status): its logger at --log-level, its client by
// the --kubeconfig rule, and the sources, whose metrics go to client-go's
// legacy registry (which the command serves).
type reader struct {
	log     *slog.Logger
	client  kubernetes.Interface
	sources source.Sources
}

func (o *sourceOptions) reader(logLevel string, kube kubeFlags) (reader, error) {
	log, err := newLogger(logLevel)
	if err != nil {
		return reader{}, err
	}
	client, err := kube.client()
	if err != nil {
		return reader{}, err
	}
	sources, err := o.Config(client, legacyregistry.Registerer(), log)
	if err != nil {
		return reader{}, err
	}
	return reader{log: log, client: client, sources: sources}, nil
}
