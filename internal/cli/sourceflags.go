package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/source"
	"github.com/ning-edge/ning/internal/topology"
)

// sourceFlags are the flags of every command that reads the topology store
// (scheduler, extender, rescheduler, dashboard): where RTTs, traffic and
// loads come from, and how long they stay valid. add registers them, start
// feeds a store from them.
type sourceFlags struct {
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
	maxSites      int
}

func (f *sourceFlags) add(fs *pflag.FlagSet) {
	f.latencyFile = source.LatencyFileFlag(fs)
	fs.BoolVar(&f.mqttEnabled, "mqtt", false, "subscribe to latency and traffic reports on the MQTT broker")
	f.mqtt.add(fs)
	fs.StringVar(&f.goldpingerURL, "goldpinger-url", "", "poll RTTs from the `URL` of a Goldpinger's /check_all, e.g. http://goldpinger.goldpinger:8080/check_all")
	fs.StringSliceVar(&f.scoresURLs, "scores-url", nil, "poll RTTs from the `URL` of a prober's /scores (ning probe; seed 004's shape); repeat or comma-separate for several probers")
	fs.DurationVar(&f.pollInterval, "poll-interval", 30*time.Second, "how often --goldpinger-url and --scores-url are polled")
	fs.DurationVar(&f.pollTimeout, "poll-timeout", 10*time.Second, "time limit of one poll of --goldpinger-url or --scores-url")
	fs.StringVar(&f.siteLabel, "site-label", topology.DefaultSiteLabel, "node label whose value names a node's site (a node without it is a site of its own)")
	fs.DurationVar(&f.ttl, "data-ttl", topology.DefaultTTL, "how long a measured RTT, load or traffic figure stays valid")
	fs.Float64Var(&f.alpha, "ewma-alpha", topology.DefaultAlpha, "weight of a new RTT or CPU observation in the moving average (0..1]")
	fs.IntVar(&f.maxSites, "max-sites", topology.DefaultMaxSites, "most sites the store holds data for; reports naming a new site past it are rejected (reason too_many_sites)")
}

// storeConfig checks --ewma-alpha and --data-ttl and returns the store's
// configuration.
func (f *sourceFlags) storeConfig() (topology.Config, error) {
	if f.alpha <= 0 || f.alpha > 1 {
		return topology.Config{}, fmt.Errorf("--ewma-alpha %v: want a value in (0, 1]", f.alpha)
	}
	if f.ttl <= 0 {
		return topology.Config{}, fmt.Errorf("--data-ttl %v: want a positive duration", f.ttl)
	}
	if f.maxSites <= 0 {
		return topology.Config{}, fmt.Errorf("--max-sites %d: want a positive number", f.maxSites)
	}
	return topology.Config{Alpha: f.alpha, TTL: f.ttl, MaxSites: f.maxSites}, nil
}

// polled reports whether an HTTP source is given: those need the cluster's
// nodes to map the addresses and host names they report to sites.
func (f *sourceFlags) polled() bool { return f.goldpingerURL != "" || len(f.scoresURLs) > 0 }

// validate checks the source flags without touching the network.
func (f *sourceFlags) validate() error {
	if _, err := f.storeConfig(); err != nil {
		return err
	}
	if f.siteLabel == "" {
		return errors.New("--site-label: want a label key")
	}
	if f.polled() {
		if f.pollInterval <= 0 {
			return fmt.Errorf("--poll-interval %v: want a positive duration", f.pollInterval)
		}
		if f.pollTimeout <= 0 {
			return fmt.Errorf("--poll-timeout %v: want a positive duration", f.pollTimeout)
		}
	}
	if f.goldpingerURL != "" {
		if err := checkHTTPURL(f.goldpingerURL); err != nil {
			return fmt.Errorf("--goldpinger-url: %w", err)
		}
	}
	for _, u := range f.scoresURLs {
		if err := checkHTTPURL(u); err != nil {
			return fmt.Errorf("--scores-url: %w", err)
		}
	}
	return nil
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

// start feeds store from the flags: it loads --latency-file (an error stops
// the command: the operator named a file ning cannot use), subscribes to
// MQTT and starts polling Goldpinger and the probers until ctx is done or
// stop is called. stop ends them and returns once every poller has stopped
// and the subscriber is closed; the caller calls it, also after an error.
// client is read only with --goldpinger-url or --scores-url, to map nodes to
// sites from a node informer; it may be nil otherwise. Metrics
// (ning_reports_*, ning_source_unmapped_total, ning_mqtt_*) go to reg.
func (f *sourceFlags) start(ctx context.Context, store *topology.Store, client kubernetes.Interface, reg prometheus.Registerer, log *slog.Logger) (stop func() error, err error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var closers []func(context.Context) error
	stopAll := func() error {
		cancel()
		wg.Wait()
		cctx, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer done()
		var errs []error
		for _, c := range closers {
			errs = append(errs, c(cctx))
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, stopAll())
		}
	}()
	if err := f.validate(); err != nil {
		return nil, err
	}
	if *f.latencyFile == "" && !f.mqttEnabled && !f.polled() {
		log.Warn("no latency source: give --latency-file, --mqtt, --goldpinger-url or --scores-url; until data arrives ning scores neutrally")
	}
	m, err := source.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	if *f.latencyFile != "" {
		if err := source.LoadLatencyFile(store, *f.latencyFile, m); err != nil {
			return nil, fmt.Errorf("--latency-file: %w", err)
		}
		log.Info("loaded static latency", "file", *f.latencyFile)
	}
	if f.mqttEnabled {
		cfg, err := f.mqtt.config()
		if err != nil {
			return nil, err
		}
		src, err := source.NewMQTT(store, source.Config{}, clock.RealClock{}, reg, log)
		if err != nil {
			return nil, err
		}
		sub, err := mqtt.NewSubscriber(ctx, cfg, mqtt.SubscriberOptions{}, src.Handle, reg, log)
		if err != nil {
			return nil, fmt.Errorf("MQTT subscriber: %w", err)
		}
		closers = append(closers, sub.Close)
	}
	if !f.polled() {
		return stopAll, nil
	}
	if client == nil {
		return nil, errors.New("--goldpinger-url and --scores-url need the Kubernetes API (to map node addresses to sites)")
	}
	sites, err := f.followNodes(ctx, client)
	if err != nil {
		return nil, err
	}
	var pollers []*source.Poller
	if f.goldpingerURL != "" {
		pollers = append(pollers, source.NewGoldpinger(store, f.httpConfig(f.goldpingerURL), source.Sites{}, clock.RealClock{}, m, log))
	}
	for _, u := range f.scoresURLs {
		pollers = append(pollers, source.NewScores(store, f.httpConfig(u), source.Sites{}, clock.RealClock{}, m, log))
	}
	for _, p := range pollers {
		p.FollowSites(sites)
		wg.Go(func() {
			if err := p.Run(ctx); err != nil { // Run logs and counts each failed poll; it fails only on misuse
				log.Error("latency poller stopped", "err", err)
			}
		})
	}
	log.Info("polling latency sources", "goldpinger", f.goldpingerURL, "scores", f.scoresURLs, "interval", f.pollInterval)
	return stopAll, nil
}

func (f *sourceFlags) httpConfig(u string) source.HTTPConfig {
	return source.HTTPConfig{URL: u, Interval: f.pollInterval, Timeout: f.pollTimeout}
}

// followNodes starts a node informer and returns a function giving the
// current node-to-site and address-to-node maps from its cache.
func (f *sourceFlags) followNodes(ctx context.Context, client kubernetes.Interface) (func() source.Sites, error) {
	factory := informers.NewSharedInformerFactory(client, 0)
	lister := factory.Core().V1().Nodes().Lister()
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return nil, fmt.Errorf("node informer for the polled sources: %s did not sync: %w", typ, context.Cause(ctx))
		}
	}
	label := f.siteLabel
	return func() source.Sites {
		list, err := lister.List(labels.Everything())
		if err != nil { // a cache lister does not fail; keep the type honest
			return source.Sites{}
		}
		nodes := make([]v1.Node, len(list))
		for i, n := range list {
			nodes[i] = *n
		}
		return source.SitesFromNodes(nodes, label)
	}, nil
}
