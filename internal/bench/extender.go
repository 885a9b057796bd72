package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"

	"github.com/ning-edge/ning/internal/extender"
	"github.com/ning-edge/ning/internal/scheduler"
	"github.com/ning-edge/ning/internal/testcluster"
)

// StartStockScheduler runs the stock kube-scheduler (no out-of-tree plugins)
// in this process from configYAML until ctx is done, and returns once its
// caches have synced. It runs the scheduler loop itself rather than through
// app.Run, whose one-per-process configz registration would clash with a
// second in-process scheduler (ning's); there is no HTTPS endpoint and no
// leader election.
func StartStockScheduler(ctx context.Context, dir, configYAML string) error {
	file := filepath.Join(dir, "stock-scheduler-config.yaml")
	if err := os.WriteFile(file, []byte(configYAML), 0o600); err != nil {
		return fmt.Errorf("writing the stock scheduler's configuration: %w", err)
	}
	opts := schedoptions.NewOptions()
	opts.ConfigFile = file
	opts.SecureServing.BindPort = 0
	cc, sched, err := schedapp.Setup(ctx, opts)
	if err != nil {
		return fmt.Errorf("setting up the stock scheduler: %w", err)
	}
	if cc.ComponentConfig.LeaderElection.LeaderElect {
		return fmt.Errorf("the stock scheduler's configuration enables leader election: not supported in process")
	}
	cc.EventBroadcaster.StartRecordingToSink(ctx.Done())
	cc.InformerFactory.Start(ctx.Done())
	if cc.DynInformerFactory != nil {
		cc.DynInformerFactory.Start(ctx.Done())
	}
	cc.InformerFactory.WaitForCacheSync(ctx.Done())
	if cc.DynInformerFactory != nil {
		cc.DynInformerFactory.WaitForCacheSync(ctx.Done())
	}
	if err := sched.WaitForHandlersSync(ctx); err != nil {
		return fmt.Errorf("stock scheduler handlers: %w", err)
	}
	go func() {
		sched.Run(ctx)
		cc.EventBroadcaster.Shutdown()
	}()
	return nil
}

// ExtenderResult is the JSON of `ning bench extender -o json`.
type ExtenderResult struct {
	Nodes int `json:"nodes"`
	Pods  int `json:"pods"`
	Sites int `json:"sites"`
	// Extender is the stock kube-scheduler (default profile) calling `ning
	// extender` over HTTP with nodeCacheCapable.
	Extender ProfileResult `json:"extender"`
	// Plugins is ning's profile (its scheduler plugins in process).
	Plugins ProfileResult `json:"plugins"`
	// Ratio is extender pods/s over plugins pods/s.
	Ratio float64 `json:"ratio"`
}

// stockProfile is the stock scheduler's profile in the extender benchmark.
const stockProfile = "default-scheduler"

// RunExtender starts a control plane and N nodes, a `ning extender` on
// loopback, the stock kube-scheduler configured to call it
// (nodeCacheCapable, as deploy/extender-config.yaml) and ning's scheduler
// (its plugins); then schedules the same P pods through each in turn, timed
// from the release of their scheduling gates to the last binding.
func RunExtender(ctx context.Context, o SchedulerOptions) (res *ExtenderResult, err error) {
	if o.Nodes <= 0 || o.Pods <= 0 || o.Sites <= 0 || o.Sites > o.Nodes {
		return nil, fmt.Errorf("want nodes >= sites >= 1 and pods >= 1, got %d nodes, %d sites, %d pods", o.Nodes, o.Sites, o.Pods)
	}
	if o.PodsPerWorkload <= 0 {
		o.PodsPerWorkload = 50
	}
	if o.Rounds <= 0 {
		o.Rounds = 1
	}
	session := testcluster.NewSession("bench", o.Log)
	defer session.Close()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("control plane: %v", r)
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	cp := testcluster.Start(session)
	o.Log.Info("control plane up", "seconds", time.Since(start).Seconds())

	sites := make([]string, o.Sites)
	for i := range sites {
		sites[i] = fmt.Sprintf("site-%03d", i)
	}
	start = time.Now()
	if err := parallel(ctx, o.Nodes, 32, func(ctx context.Context, i int) error {
		_, err := testcluster.CreateReadyNode(ctx, cp.Client, testcluster.Node{Name: fmt.Sprintf("node-%05d", i), Site: sites[i%o.Sites]})
		return err
	}); err != nil {
		return nil, err
	}
	o.Log.Info("nodes created", "nodes", o.Nodes, "seconds", time.Since(start).Seconds())

	store, err := benchStore(sites, o.Seed)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("extender listener: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- extender.Run(ctx, ln, cp.Client, store, extender.RunOptions{}, o.Log) }()
	defer func() {
		cancel()
		if serr := <-served; serr != nil && err == nil {
			err = serr
		}
	}()

	ningCfg, err := scheduler.DefaultConfig(scheduler.ConfigParams{Kubeconfig: cp.Kubeconfig, QPS: 5000})
	if err != nil {
		return nil, err
	}
	if _, err := scheduler.Start(ctx, cp.Dir, ningCfg, store); err != nil {
		return nil, err
	}
	stockCfg, err := extender.SchedulerConfig(extender.SchedulerConfigParams{
		Kubeconfig: cp.Kubeconfig, QPS: 5000, URL: "http://" + ln.Addr().String(), NodeCacheCapable: true,
	})
	if err != nil {
		return nil, err
	}
	if err := StartStockScheduler(ctx, session.TempDir(), stockCfg); err != nil {
		return nil, err
	}

	res = &ExtenderResult{Nodes: o.Nodes, Pods: o.Pods, Sites: o.Sites}
	seconds := map[string]float64{}
	for r := range o.Rounds {
		order := []string{stockProfile, scheduler.ProfileName}
		if r%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, profile := range order {
			s, err := measure(ctx, cp.Client, profile, fmt.Sprintf("bench-%d-%s", r, profile), sites, o)
			if err != nil {
				return nil, fmt.Errorf("scheduler %s: %w", profile, err)
			}
			stats, err := schedulerStats(profile)
			if err != nil {
				return nil, err
			}
			o.Log.Info("scheduler measured", "profile", profile, "round", r, "seconds", s, "podsPerSecond", float64(o.Pods)/s,
				"cumulative", formatStats(stats))
			seconds[profile] += s
		}
	}
	res.Extender = ProfileResult{Seconds: seconds[stockProfile] / float64(o.Rounds)}
	res.Plugins = ProfileResult{Seconds: seconds[scheduler.ProfileName] / float64(o.Rounds)}
	res.Extender.PodsPerSecond = float64(o.Pods) / res.Extender.Seconds
	res.Plugins.PodsPerSecond = float64(o.Pods) / res.Plugins.Seconds
	res.Ratio = res.Extender.PodsPerSecond / res.Plugins.PodsPerSecond
	return res, nil
}
