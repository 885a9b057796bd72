package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"
	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/schedmetrics"
	"github.com/ning-edge/ning/internal/scheduler"
	"github.com/ning-edge/ning/internal/topology"
)

// newSchedulerCommand is kube-scheduler's own command (every standard flag,
// --config taking a KubeSchedulerConfiguration) with ning's plugins registered
// and ning's data sources added.
func newSchedulerCommand() *cobra.Command {
	store := topology.NewStore(topology.Config{}, clock.RealClock{})
	cmd := schedapp.NewSchedulerCommand(scheduler.PluginOptions(store)...)
	cmd.Use = "scheduler"
	cmd.Short = "Run kube-scheduler with ning's plugins (profile ning-scheduler)"
	cmd.Long = `scheduler runs the real kube-scheduler with ning's plugins registered out of
tree: NetworkLatency (delay_<from> constraints), TrafficLatency (traffic-weighted
RTT), NodeLoad (CPU and PSI) and CloudFallback. It takes every standard
kube-scheduler flag. Without --config it runs ning's default profile
(schedulerName: ning-scheduler; see deploy/scheduler-config.yaml), using
--kubeconfig to reach the cluster.

RTT, traffic and load come from --latency-file (a topology YAML or CSV matrix,
static), with --mqtt from prober and discovery reports over MQTT, and from
polling a Goldpinger (--goldpinger-url) and probers' /scores (--scores-url),
whose node addresses are mapped to sites through the Kubernetes API
(--kubeconfig, $KUBECONFIG, ~/.kube/config or in-cluster, the rule of
every ning command; --site-label).`
	cmd.Example = `  ning scheduler --kubeconfig ~/.kube/config --latency-file examples/edge-city.yaml
  ning scheduler --config deploy/scheduler-config.yaml --mqtt --broker tls://broker:8883 --mqtt-ca ca.pem`
	sources := &sourceFlags{}
	// ning's flags go in their own set so that the help, which kube-scheduler
	// prints by named flag sets, can list them too.
	f := pflag.NewFlagSet("ning", pflag.ContinueOnError)
	sources.add(f)
	cmd.Flags().AddFlagSet(f)
	help, usage := cmd.HelpFunc(), cmd.UsageFunc()
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		help(c, args)
		_, _ = fmt.Fprintf(c.OutOrStdout(), "\nning flags:\n\n%s", f.FlagUsages())
	})
	cmd.SetUsageFunc(func(c *cobra.Command) error {
		if err := usage(c); err != nil {
			return err
		}
		_, err := fmt.Fprintf(c.OutOrStderr(), "\nning flags:\n\n%s", f.FlagUsages())
		return err
	})

	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if err := sources.validate(); err != nil {
			return err
		}
		storeCfg, err := sources.storeConfig()
		if err != nil {
			return err
		}
		store.SetConfig(storeCfg)
		// kube-scheduler owns klog (-v, --logging-format); ning's sources
		// log through it, so one system prints and filters every line.
		log := slog.New(logr.ToSlogHandler(klog.Background()))
		// The sources and the age reporter stop with the command's context.
		ctx, cancel := context.WithCancel(c.Context())
		defer cancel()
		var client kubernetes.Interface
		if sources.polled() {
			// kube-scheduler builds its own client later, from --config or
			// --kubeconfig; the polled sources' node informer uses
			// --kubeconfig, $KUBECONFIG or the in-cluster configuration.
			kubeconfig := ""
			if fl := c.Flags().Lookup("kubeconfig"); fl != nil {
				kubeconfig = fl.Value.String()
			}
			if client, err = kubeClient(kubeconfig); err != nil {
				return err
			}
		}
		stopSources, err := sources.start(ctx, store, client, legacyregistry.Registerer(), log)
		if err != nil {
			return err
		}
		defer func() { _ = stopSources() }() // kube-scheduler's result is the command's
		if !c.Flags().Changed("config") {
			file, err := writeDefaultSchedulerConfig(c)
			if err != nil {
				return err
			}
			if err := c.Flags().Set("config", file); err != nil {
				return err
			}
		}
		ages := make(chan struct{})
		go func() {
			defer close(ages)
			reportAges(ctx, store)
		}()
		defer func() { cancel(); <-ages }()
		return run(c, args)
	}
	return cmd
}

func writeDefaultSchedulerConfig(c *cobra.Command) (string, error) {
	kubeconfig := ""
	if fl := c.Flags().Lookup("kubeconfig"); fl != nil {
		kubeconfig = fl.Value.String()
	}
	leaderElect := true
	if fl := c.Flags().Lookup("leader-elect"); fl != nil && fl.Changed {
		leaderElect = fl.Value.String() == "true"
	}
	cfg, err := scheduler.DefaultConfig(scheduler.ConfigParams{Kubeconfig: kubeconfig, LeaderElect: leaderElect})
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "ning-scheduler-")
	if err != nil {
		return "", fmt.Errorf("writing the default configuration: %w", err)
	}
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		return "", errors.Join(fmt.Errorf("writing the default configuration: %w", err), os.RemoveAll(dir))
	}
	return file, nil
}

// reportAges keeps ning_scheduler_data_age_seconds current.
func reportAges(ctx context.Context, store *topology.Store) {
	m := schedmetrics.Register()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		m.UpdateAges(store.LastUpdates(), time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
