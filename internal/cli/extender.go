package cli

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/component-base/metrics/legacyregistry"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/extender"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/policy"
)

type extenderOptions struct {
	sources                      sourceOptions
	listen, kubeconfig, logLevel string
	cfg                          extender.Config
	run                          extender.RunOptions
	unknownRTT, missingLoad      string
	cpuFilter, cpuPenaltyFrom    float64
	penalty                      float64
	weights                      policy.Weights
}

func newExtenderCommand() *cobra.Command {
	o := &extenderOptions{weights: policy.DefaultWeights()}
	cmd := &cobra.Command{
		Use:   "extender --listen ADDR [--kubeconfig FILE] [--latency-file FILE] [--mqtt ...] [--goldpinger-url URL] [--scores-url URL ...]",
		Short: "Serve ning's placement to a stock kube-scheduler through the extender API",
		Long: `extender serves the kube-scheduler extender API (k8s.io/kube-scheduler/extender/v1)
for clusters that keep the stock kube-scheduler: POST /filter applies delay_<from>
constraints, load thresholds and per-site limits (a site holding the pod's
ning.io/max-per-site, or its capacity, of the workload's replicas is
filtered out), POST /prioritize scores nodes 0..10 by the
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd)
			defer stop()
			return run(ctx, o, extender.Run)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func (o *extenderOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.listen, "listen", ":8888", "address to serve the extender API on")
	addKubeconfigFlag(f, &o.kubeconfig)
	o.sources.AddFlags(f)
	f.StringVar(&o.unknownRTT, "unknown-rtt", string(placement.FailClosed), "a delay constraint with an unknown RTT: FailClosed or FailOpen")
	f.Float64Var(&o.cfg.TrafficLatency.PerReplicaRPS, "per-replica-rps", 0, "requests/s one replica serves (0: no limit)")
	f.Float64Var(&o.cpuFilter, "cpu-filter", configv1alpha1.DefaultCPUFilter, "filter out nodes at or above this CPU utilisation (0..1)")
	f.Float64Var(&o.cpuPenaltyFrom, "cpu-penalty-from", configv1alpha1.DefaultCPUPenaltyFrom, "CPU utilisation from which a node's load score drops by --penalty")
	f.Float64Var(&o.penalty, "penalty", configv1alpha1.DefaultPenalty, "load score penalty (0..1)")
	f.StringVar(&o.missingLoad, "missing-load", string(configv1alpha1.MissingLoadNeutral), "a node without a fresh load report: Neutral (passes /filter, neutral load score) or Filter (filtered out, as seed 004)")
	f.Int32Var(&o.weights.TrafficLatency, "traffic-latency-weight", o.weights.TrafficLatency, "weight of the traffic part of the /prioritize score, as TrafficLatency's in the scheduler profile")
	f.Int32Var(&o.weights.NodeLoad, "node-load-weight", o.weights.NodeLoad, "weight of the load part of the /prioritize score, as NodeLoad's in the scheduler profile")
	f.StringVar(&o.cfg.CloudFallback.CloudLabel, "cloud-label", "kubernetes.io/role", "label marking cloud nodes, used only when no edge node fits")
	f.StringVar(&o.cfg.CloudFallback.CloudValue, "cloud-value", "cloud", "value of --cloud-label on cloud nodes")
	f.StringVar(&o.run.Server.CertFile, "tls-cert", "", "serve HTTPS with this certificate (with --tls-key)")
	f.StringVar(&o.run.Server.KeyFile, "tls-key", "", "key of --tls-cert")
	f.Int64Var(&o.cfg.Limits.MaxBodyBytes, "max-body-bytes", extender.DefaultMaxBodyBytes, "largest request body; larger ones get 413")
	f.IntVar(&o.cfg.Limits.MaxNodes, "max-nodes", extender.DefaultMaxNodes, "most nodes one request may list; more get 413")
	f.IntVar(&o.cfg.Limits.MaxLabelBytes, "max-label-bytes", extender.DefaultMaxLabelBytes, "longest label (key plus value) read from a request; a pod label over it rejects every node with one short reason")
	f.IntVar(&o.cfg.Limits.MaxInFlight, "max-in-flight", extender.DefaultMaxInFlight, "/filter and /prioritize requests answered at once; more get 429 (/bind has its own limit, 16)")
	f.DurationVar(&o.run.Server.ReadTimeout, "read-timeout", 0, "HTTP read timeout (default 10s)")
	f.DurationVar(&o.run.Server.WriteTimeout, "write-timeout", 0, "HTTP write timeout (default 10s)")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// config is the extender's policy configuration from the flags.
func (o *extenderOptions) config() extender.Config {
	cfg := o.cfg
	cfg.NetworkLatency.SiteLabel = o.sources.siteLabel
	cfg.TrafficLatency.SiteLabel = o.sources.siteLabel
	cfg.NetworkLatency.UnknownRTT = configv1alpha1.UnknownRTTPolicy(o.unknownRTT)
	cfg.NodeLoad.MissingLoad = configv1alpha1.MissingLoadPolicy(o.missingLoad)
	cfg.Weights = o.weights
	cpuFilter, cpuPenaltyFrom, penalty := o.cpuFilter, o.cpuPenaltyFrom, o.penalty
	cfg.NodeLoad.CPUFilter, cfg.NodeLoad.CPUPenaltyFrom, cfg.NodeLoad.Penalty = &cpuFilter, &cpuPenaltyFrom, &penalty
	cfg.SetDefaults()
	return cfg
}

func (o *extenderOptions) Validate() error {
	var errs []error
	if err := validLogLevel(o.logLevel); err != nil {
		errs = append(errs, err)
	}
	if err := o.sources.Validate(); err != nil {
		errs = append(errs, err)
	}
	cfg := o.config()
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (o *extenderOptions) Config() (extender.RunConfig, error) {
	r, err := o.sources.reader(o.logLevel, kubeFlags{kubeconfig: o.kubeconfig})
	if err != nil {
		return extender.RunConfig{}, err
	}
	opts := o.run
	opts.Config = o.config()
	opts.Gatherers = []prometheus.Gatherer{legacyregistry.DefaultGatherer} // the sources' metrics too
	return extender.RunConfig{Client: r.client, Store: o.sources.store(), Sources: r.sources, Listen: o.listen, Options: opts, Log: r.log}, nil
}
