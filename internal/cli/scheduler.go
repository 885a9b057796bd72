package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"
	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/placement"
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
--kubeconfig to reach the cluster (without it the first file of $KUBECONFIG,
then ~/.kube/config, then in-cluster).

RTT, traffic and load come from --latency-file (a topology YAML or CSV matrix,
static), with --mqtt from prober and discovery reports over MQTT, and from
polling a Goldpinger (--goldpinger-url) and probers' /scores (--scores-url),
whose node addresses are mapped to sites through the Kubernetes API
(--kubeconfig, $KUBECONFIG, ~/.kube/config or in-cluster, the rule of
every ning command; --site-label).`
	cmd.Example = `  ning scheduler --kubeconfig ~/.kube/config --latency-file examples/edge-city.yaml
  ning scheduler --config deploy/scheduler-config.yaml --mqtt --broker tls://broker:8883 --mqtt-ca ca.pem`
	o := &schedulerOptions{store: store, kubeScheduler: cmd.Flags()}
	// ning's flags go in their own set so that the help, which kube-scheduler
	// prints by named flag sets, can list them too.
	f := pflag.NewFlagSet("ning", pflag.ContinueOnError)
	o.AddFlags(f)
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

	kubeScheduler := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		// kube-scheduler handles the signals; what ning starts stops once
		// it has returned.
		ctx, cancel := context.WithCancel(c.Context())
		defer cancel()
		return run(ctx, o, func(ctx context.Context, cfg scheduler.CommandConfig) error {
			return scheduler.RunCommand(ctx, cfg, func() error { return kubeScheduler(c, args) })
		})
	}
	return cmd
}

// schedulerOptions are ning's flags of `ning scheduler`; kube-scheduler's
// own are in kubeScheduler, its command's flag set.
type schedulerOptions struct {
	sources       sourceOptions
	delayLayers   string
	store         *topology.Store // the plugins'
	kubeScheduler *pflag.FlagSet
}

func (o *schedulerOptions) AddFlags(fs *pflag.FlagSet) {
	o.sources.AddFlags(fs)
	fs.StringVar(&o.delayLayers, "delay-layers", "", "comma-separated delays (e.g. 5ms,20ms,50ms) the sites are clustered for before any pod asks (seed 002's delay layers; each delay_<from> value seen adds one); the default profile's NetworkLatency delayLayersMs, so not with --config, whose args carry them")
}

func (o *schedulerOptions) Validate() error {
	errs := []error{o.sources.Validate()}
	if _, err := placement.ParseDelayLayers(o.delayLayers); err != nil {
		errs = append(errs, fmt.Errorf("--delay-layers: %w", err))
	}
	if o.delayLayers != "" && o.kubeScheduler.Changed("config") {
		errs = append(errs, errors.New("--delay-layers shapes the default profile only: with --config, set delayLayersMs in NetworkLatency's pluginConfig args"))
	}
	return errors.Join(errs...)
}

// Config configures the plugins' store and the sources and, without
// --config, points kube-scheduler at ning's default profile.
func (o *schedulerOptions) Config() (scheduler.CommandConfig, error) {
	o.store.SetConfig(o.sources.storeConfig())
	// kube-scheduler owns klog (-v, --logging-format); ning's sources
	// log through it, so one system prints and filters every line.
	log := slog.New(logr.ToSlogHandler(klog.Background()))
	kubeconfig := ""
	if fl := o.kubeScheduler.Lookup("kubeconfig"); fl != nil {
		kubeconfig = fl.Value.String()
	}
	var client kubernetes.Interface
	if o.sources.polled() {
		var err error
		if client, err = kubeClient(kubeconfig); err != nil {
			return scheduler.CommandConfig{}, err
		}
	}
	sources, err := o.sources.Config(client, legacyregistry.Registerer(), log)
	if err != nil {
		return scheduler.CommandConfig{}, err
	}
	if !o.kubeScheduler.Changed("config") {
		leaderElect := true
		if fl := o.kubeScheduler.Lookup("leader-elect"); fl != nil && fl.Changed {
			leaderElect = fl.Value.String() == "true"
		}
		// kube-scheduler reads a kubeconfig file only; the one rule picks it.
		layers, err := placement.ParseDelayLayers(o.delayLayers)
		if err != nil {
			return scheduler.CommandConfig{}, fmt.Errorf("--delay-layers: %w", err)
		}
		file, err := scheduler.WriteDefaultConfig(scheduler.ConfigParams{Kubeconfig: kubeconfigFile(kubeconfig), LeaderElect: leaderElect, DelayLayersMs: layers})
		if err != nil {
			return scheduler.CommandConfig{}, err
		}
		if err := o.kubeScheduler.Set("config", file); err != nil {
			return scheduler.CommandConfig{}, err
		}
	}
	return scheduler.CommandConfig{Store: o.store, Sources: sources}, nil
}
