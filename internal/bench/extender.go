package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
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
