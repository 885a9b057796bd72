package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/component-base/metrics/legacyregistry"
	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/schedmetrics"
	"github.com/ning-edge/ning/internal/scheduler"
	"github.com/ning-edge/ning/internal/source"
	"github.com/ning-edge/ning/internal/topology"
)

// schedulerOptions are ning's flags beside kube-scheduler's own.
type schedulerOptions struct {
	latencyFile string
	mqttEnabled bool
	mqtt        mqttFlags
	ttl         time.Duration
	alpha       float64
}

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
static) and, with --mqtt, from prober and discovery reports over MQTT.`
	cmd.Example = `  ning scheduler --kubeconfig ~/.kube/config --latency-file examples/edge-city.yaml
  ning scheduler --config deploy/scheduler-config.yaml --mqtt --broker tls://broker:8883 --mqtt-ca ca.pem`
	o := &schedulerOptions{}
	// ning's flags go in their own set so that the help, which kube-scheduler
	// prints by named flag sets, can list them too.
	f := pflag.NewFlagSet("ning", pflag.ContinueOnError)
	f.StringVar(&o.latencyFile, "latency-file", "", "static RTTs (and traffic) from a topology YAML or CSV matrix")
	f.BoolVar(&o.mqttEnabled, "mqtt", false, "subscribe to latency and traffic reports on the MQTT broker")
	o.mqtt.add(f)
	f.DurationVar(&o.ttl, "data-ttl", topology.DefaultTTL, "how long a measured RTT, load or traffic figure stays valid")
	f.Float64Var(&o.alpha, "ewma-alpha", topology.DefaultAlpha, "weight of a new RTT or CPU observation in the moving average (0..1]")
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
		if o.alpha <= 0 || o.alpha > 1 {
			return fmt.Errorf("--ewma-alpha %v: want a value in (0, 1]", o.alpha)
		}
		if o.ttl <= 0 {
			return fmt.Errorf("--data-ttl %v: want a positive duration", o.ttl)
		}
		store.SetConfig(topology.Config{Alpha: o.alpha, TTL: o.ttl})
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		ctx := context.Background()
		if err := feedStore(ctx, store, o, log); err != nil {
			return err
		}
		if !c.Flags().Changed("config") {
			file, err := writeDefaultSchedulerConfig(c)
			if err != nil {
				return err
			}
			if err := c.Flags().Set("config", file); err != nil {
				return err
			}
		}
		go reportAges(ctx, store)
		return run(c, args)
	}
	return cmd
}

// feedStore loads the static file and starts the MQTT source.
func feedStore(ctx context.Context, store *topology.Store, o *schedulerOptions, log *slog.Logger) error {
	if o.latencyFile == "" && !o.mqttEnabled {
		log.Warn("no latency source: give --latency-file or --mqtt; until data arrives ning's plugins score neutrally")
	}
	if o.latencyFile != "" {
		data, err := os.ReadFile(o.latencyFile)
		if err != nil {
			return fmt.Errorf("--latency-file: %w", err)
		}
		spec, err := topology.ParseFile(o.latencyFile, data)
		if err != nil {
			return fmt.Errorf("--latency-file %s: %w", o.latencyFile, err)
		}
		if err := store.LoadSpec(spec); err != nil {
			return fmt.Errorf("--latency-file %s: %w", o.latencyFile, err)
		}
		log.Info("loaded static latency", "file", o.latencyFile, "sites", len(spec.Sites))
	}
	if !o.mqttEnabled {
		return nil
	}
	cfg, err := o.mqtt.config()
	if err != nil {
		return err
	}
	src, err := source.NewMQTT(store, source.Config{}, clock.RealClock{}, legacyregistry.Registerer(), log)
	if err != nil {
		return err
	}
	if _, err := mqtt.NewSubscriber(ctx, cfg, mqtt.SubscriberOptions{}, src.Handle, legacyregistry.Registerer(), log); err != nil {
		return fmt.Errorf("MQTT subscriber: %w", err)
	}
	return nil
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
