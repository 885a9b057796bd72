package cli

import (
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/utils/clock"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/extender"
	"github.com/ning-edge/ning/internal/httpserve"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/topology"
)

func newExtenderCommand() *cobra.Command {
	sources := &sourceFlags{}
	var (
		listen, kubeconfig, logLevel string
		cfg                          extender.Config
		run                          extender.RunOptions
		unknownRTT                   string
		cpuFilter, cpuPenaltyFrom    float64
		penalty                      float64
	)
	weights := policy.DefaultWeights()
	cmd := &cobra.Command{
		Use:   "extender --listen ADDR [--kubeconfig FILE] [--latency-file FILE] [--mqtt ...] [--goldpinger-url URL] [--scores-url URL ...]",
		Short: "Serve ning's placement to a stock kube-scheduler through the extender API",
		Long: `extender serves the kube-scheduler extender API (k8s.io/kube-scheduler/extender/v1)
for clusters that keep the stock kube-scheduler: POST /filter applies delay_<from>
constraints and load thresholds, POST /prioritize scores nodes 0..10 by the
traffic-weighted RTT gain of their site, their load and cloud fallback, from the
same code as ning's scheduler plugins. GET /healthz, GET /metrics.

Nodes and pods come from informers (--kubeconfig, $KUBECONFIG, ~/.kube/config or in-cluster): the node cache
serves nodeCacheCapable requests, the pods give each workload's replicas per
site. RTT, traffic and load come from the same sources as ning scheduler's:
--latency-file on its own, --mqtt (prober and discovery reports), a
Goldpinger's /check_all (--goldpinger-url) and probers' /scores (--scores-url).
deploy/extender-config.yaml configures kube-scheduler to call it.`,
		Example: `  ning extender --listen :8888 --kubeconfig ~/.kube/config --latency-file examples/edge-city.yaml
  ning extender --listen :8443 --tls-cert tls.crt --tls-key tls.key --mqtt --broker tls://broker:8883 --mqtt-ca ca.pem`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			if err := sources.validate(); err != nil {
				return err
			}
			storeCfg, err := sources.storeConfig()
			if err != nil {
				return err
			}
			cfg.NetworkLatency.SiteLabel = sources.siteLabel
			cfg.TrafficLatency.SiteLabel = sources.siteLabel
			cfg.NetworkLatency.UnknownRTT = configv1alpha1.UnknownRTTPolicy(unknownRTT)
			cfg.Weights = weights
			cfg.NodeLoad.CPUFilter, cfg.NodeLoad.CPUPenaltyFrom, cfg.NodeLoad.Penalty = &cpuFilter, &cpuPenaltyFrom, &penalty
			cfg.SetDefaults()
			if err := cfg.Validate(); err != nil {
				return err
			}
			run.Config = cfg
			client, err := kubeClient(kubeconfig)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			store := topology.NewStore(storeCfg, clock.RealClock{})
			// The sources register their metrics there; serve them too.
			stopSources, err := sources.start(ctx, store, client, legacyregistry.Registerer(), log)
			if err != nil {
				return err
			}
			run.Gatherers = []prometheus.Gatherer{legacyregistry.DefaultGatherer}
			ln, err := httpserve.Listen("listen", listen)
			if err != nil {
				return errors.Join(err, stopSources())
			}
			return errors.Join(extender.Run(ctx, ln, client, store, run, log), stopSources())
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", ":8888", "address to serve the extender API on")
	addKubeconfigFlag(f, &kubeconfig)
	sources.add(f)
	f.StringVar(&unknownRTT, "unknown-rtt", string(placement.FailClosed), "a delay constraint with an unknown RTT: FailClosed or FailOpen")
	f.Float64Var(&cfg.TrafficLatency.PerReplicaRPS, "per-replica-rps", 0, "requests/s one replica serves (0: no limit)")
	f.Float64Var(&cpuFilter, "cpu-filter", configv1alpha1.DefaultCPUFilter, "filter out nodes at or above this CPU utilisation (0..1)")
	f.Float64Var(&cpuPenaltyFrom, "cpu-penalty-from", configv1alpha1.DefaultCPUPenaltyFrom, "CPU utilisation from which a node's load score drops by --penalty")
	f.Float64Var(&penalty, "penalty", configv1alpha1.DefaultPenalty, "load score penalty (0..1)")
	f.Int32Var(&weights.TrafficLatency, "traffic-latency-weight", weights.TrafficLatency, "weight of the traffic part of the /prioritize score, as TrafficLatency's in the scheduler profile")
	f.Int32Var(&weights.NodeLoad, "node-load-weight", weights.NodeLoad, "weight of the load part of the /prioritize score, as NodeLoad's in the scheduler profile")
	f.StringVar(&cfg.CloudFallback.CloudLabel, "cloud-label", "kubernetes.io/role", "label marking cloud nodes, used only when no edge node fits")
	f.StringVar(&cfg.CloudFallback.CloudValue, "cloud-value", "cloud", "value of --cloud-label on cloud nodes")
	f.StringVar(&run.Server.CertFile, "tls-cert", "", "serve HTTPS with this certificate (with --tls-key)")
	f.StringVar(&run.Server.KeyFile, "tls-key", "", "key of --tls-cert")
	f.Int64Var(&cfg.Limits.MaxBodyBytes, "max-body-bytes", extender.DefaultMaxBodyBytes, "largest request body; larger ones get 413")
	f.IntVar(&cfg.Limits.MaxNodes, "max-nodes", extender.DefaultMaxNodes, "most nodes one request may list; more get 413")
	f.IntVar(&cfg.Limits.MaxLabelBytes, "max-label-bytes", extender.DefaultMaxLabelBytes, "longest label (key plus value) read from a request; a pod label over it rejects every node with one short reason")
	f.IntVar(&cfg.Limits.MaxInFlight, "max-in-flight", extender.DefaultMaxInFlight, "requests answered at once; more get 429")
	f.DurationVar(&run.Server.ReadTimeout, "read-timeout", 0, "HTTP read timeout (default 10s)")
	f.DurationVar(&run.Server.WriteTimeout, "write-timeout", 0, "HTTP write timeout (default 10s)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}
