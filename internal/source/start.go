package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/topology"
)

// Sources names where a store's RTTs, traffic and loads come from: what
// the --latency-file, --mqtt, --goldpinger-url and --scores-url flags of
// the commands that read a store (scheduler, extender, rescheduler,
// dashboard, status) configure. Start feeds a store from them.
type Sources struct {
	// LatencyFile is a topology file or CSV matrix loaded once, static.
	LatencyFile string
	// MQTT, when not nil, subscribes to prober and discovery reports.
	MQTT *mqtt.Config
	// GoldpingerURL and ScoresURLs are polled every PollInterval, each
	// poll bounded by PollTimeout.
	GoldpingerURL string
	ScoresURLs    []string
	PollInterval  time.Duration
	PollTimeout   time.Duration
	// SiteLabel is the node label naming a node's site; the polled sources
	// map the addresses and host names they report to sites with it.
	SiteLabel string
	// CrossCheck is what is done with an MQTT RTT that other sites'
	// measurements make implausible (topology.Store.CheckRTT).
	CrossCheck topology.CrossCheck
	// Client lists the nodes for the polled sources, and for the MQTT
	// source's check that a load report names the reporting site's own
	// nodes; it may be nil without polled sources (no such check then).
	Client kubernetes.Interface
	// Registerer receives the sources' metrics (ning_reports_*,
	// ning_source_unmapped_total, ning_mqtt_*).
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// Polled reports whether an HTTP source is given: those need the cluster's
// nodes to map the addresses and host names they report to sites.
func (s Sources) Polled() bool { return s.GoldpingerURL != "" || len(s.ScoresURLs) > 0 }

// Start feeds store from s: it loads the latency file (an error: the
// operator named a file ning cannot use), subscribes to MQTT and starts
// polling Goldpinger and the probers, until ctx is done or stop is called.
// stop ends them and returns once every poller has stopped and the
// subscriber is closed; the caller calls it (on an error Start has already
// stopped what it started).
func Start(ctx context.Context, s Sources, store *topology.Store) (stop func() error, err error) {
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
	log, reg := s.Log, s.Registerer
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if s.LatencyFile == "" && s.MQTT == nil && !s.Polled() {
		log.Warn("no latency source: give --latency-file, --mqtt, --goldpinger-url or --scores-url; until data arrives ning scores neutrally")
	}
	m, err := NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	if s.LatencyFile != "" {
		if err := LoadLatencyFile(store, s.LatencyFile, m); err != nil {
			return nil, fmt.Errorf("--latency-file: %w", err)
		}
		log.Info("loaded static latency", "file", s.LatencyFile)
	}
	nodes := nodeLister(ctx, s.Client)
	if s.MQTT != nil {
		scfg := Config{CrossCheck: s.CrossCheck}
		if s.Client != nil { // a load report is then taken only for the reporting site's own nodes
			lister, err := nodes()
			if err != nil {
				return nil, err
			}
			scfg.NodeSite = func(node string) (string, bool) {
				n, err := lister.Get(node)
				if err != nil {
					return "", false
				}
				return topology.SiteOf(n.Name, n.Labels, s.SiteLabel), true
			}
		}
		src, err := NewMQTT(store, scfg, clock.RealClock{}, reg, log)
		if err != nil {
			return nil, err
		}
		sub, err := mqtt.NewSubscriber(ctx, *s.MQTT, mqtt.SubscriberOptions{}, src.Handle, reg, log)
		if err != nil {
			return nil, fmt.Errorf("MQTT subscriber: %w", err)
		}
		closers = append(closers, sub.Close)
	}
	if !s.Polled() {
		return stopAll, nil
	}
	if s.Client == nil {
		return nil, errors.New("--goldpinger-url and --scores-url need the Kubernetes API (to map node addresses to sites)")
	}
	lister, err := nodes()
	if err != nil {
		return nil, err
	}
	sites := followNodes(lister, s.SiteLabel)
	httpConfig := func(u string) HTTPConfig {
		return HTTPConfig{URL: u, Interval: s.PollInterval, Timeout: s.PollTimeout}
	}
	var pollers []*Poller
	if s.GoldpingerURL != "" {
		pollers = append(pollers, NewGoldpinger(store, httpConfig(s.GoldpingerURL), Sites{}, clock.RealClock{}, m, log))
	}
	for _, u := range s.ScoresURLs {
		pollers = append(pollers, NewScores(store, httpConfig(u), Sites{}, clock.RealClock{}, m, log))
	}
	for _, p := range pollers {
		p.FollowSites(sites)
		wg.Go(func() {
			if err := p.Run(ctx); err != nil { // Run logs and counts each failed poll; it fails only on misuse
				log.Error("latency poller stopped", "err", err)
			}
		})
	}
	log.Info("polling latency sources", "goldpinger", s.GoldpingerURL, "scores", s.ScoresURLs, "interval", s.PollInterval)
	return stopAll, nil
}

// nodeLister returns a function that starts the sources' node informer on
// its first call, waits for it to sync, and returns its lister (the same on
// every call).
func nodeLister(ctx context.Context, client kubernetes.Interface) func() (listersv1.NodeLister, error) {
	var lister listersv1.NodeLister
	return func() (listersv1.NodeLister, error) {
		if lister != nil {
			return lister, nil
		}
		factory := informers.NewSharedInformerFactory(client, 0)
		l := factory.Core().V1().Nodes().Lister()
		factory.Start(ctx.Done())
		for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return nil, fmt.Errorf("node informer of the latency sources: %s did not sync: %w", typ, context.Cause(ctx))
			}
		}
		lister = l
		return l, nil
	}
}

// followNodes returns a function giving the current node-to-site and
// address-to-node maps from lister's cache.
func followNodes(lister listersv1.NodeLister, label string) func() Sites {
	return func() Sites {
		list, err := lister.List(labels.Everything())
		if err != nil { // a cache lister does not fail; keep the type honest
			return Sites{}
		}
		nodes := make([]v1.Node, len(list))
		for i, n := range list {
			nodes[i] = *n
		}
		return SitesFromNodes(nodes, label)
	}
}

// Feed feeds store from s while run runs, and stops the sources once it has
// returned; the result joins run's error and the sources' close errors.
func Feed(ctx context.Context, s Sources, store *topology.Store, run func(context.Context) error) error {
	stop, err := Start(ctx, s, store)
	if err != nil {
		return err
	}
	return errors.Join(run(ctx), stop())
}
