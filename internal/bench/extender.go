package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"

	"github.com/ning-edge/ning/internal/extender"
	"github.com/ning-edge/ning/internal/scheduler"
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
	// SpreadScoring says the stock profile kept PodTopologySpread's scoring.
	SpreadScoring bool `json:"spreadScoring"`
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
// (nodeCacheCapable, as deploy/extender-config.yaml; o.SpreadScoring keeps
// the whole default profile) and ning's scheduler
// (its plugins); then schedules the same P pods through each in turn, timed
// from the release of their scheduling gates to the last binding.
func RunExtender(ctx context.Context, o SchedulerOptions) (res *ExtenderResult, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, err := setUp(ctx, &o)
	if err != nil {
		return nil, err
	}
	defer c.close(cancel, o.Log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("extender listener: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- extender.Serve(ctx, ln, c.cp.Client, c.store, extender.RunOptions{}, o.Log) }()
	defer func() {
		cancel()
		if serr := <-served; serr != nil && err == nil {
			err = serr
		}
	}()

	ningCfg, err := scheduler.DefaultConfig(scheduler.ConfigParams{Kubeconfig: c.cp.Kubeconfig, QPS: 5000})
	if err != nil {
		return nil, err
	}
	if _, err := scheduler.Start(ctx, c.cp.Dir, ningCfg, c.store); err != nil {
		return nil, err
	}
	stockCfg, err := extender.SchedulerConfig(extender.SchedulerConfigParams{
		Kubeconfig: c.cp.Kubeconfig, QPS: 5000, URL: "http://" + ln.Addr().String(), NodeCacheCapable: true,
		SpreadScoring: o.SpreadScoring,
	})
	if err != nil {
		return nil, err
	}
	if err := StartStockScheduler(ctx, c.cp.Dir, stockCfg); err != nil {
		return nil, err
	}

	r, err := compare(ctx, c, o, stockProfile, scheduler.ProfileName)
	if err != nil {
		return nil, err
	}
	res = &ExtenderResult{Nodes: o.Nodes, Pods: o.Pods, Sites: o.Sites, SpreadScoring: o.SpreadScoring,
		Extender: r[stockProfile], Plugins: r[scheduler.ProfileName]}
	res.Ratio = res.Extender.PodsPerSecond / res.Plugins.PodsPerSecond
	return res, nil
}
