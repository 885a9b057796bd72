package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ning-edge/ning/internal/discover"
	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/topology"
)

type discoverOptions struct {
	source                   string
	promURL, query           string
	window                   time.Duration
	nodeLabel                string
	otlpListen               string
	otlpMetric, otlpNodeAttr string
	otlpMatch                []string
	otlpAuth                 discover.OTLPAuth
	otlpLimits               discover.OTLPLimits
	kubeconfig               string
	gatewaySelector          string
	gatewayNamespace         string
	siteLabel                string
	namespace, image         string
	jobTTL, jobPeriod        time.Duration
	keepJobs                 int
	owner                    string
	serviceAccount           string
	probeArgs                []string
	jobTemplate              string
	once, dryRun             bool
	wait, interval           time.Duration
	output, listen           string
	queueSize                int
	logLevel                 string
	mqtt                     mqttFlags

	out io.Writer // each decision
}

func (o *discoverOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.source, "source", "prometheus", "traffic source: prometheus (pull) or otlp (gRPC push receiver)")
	f.StringVar(&o.promURL, "prometheus-url", "http://127.0.0.1:9090", "Prometheus server URL")
	f.StringVar(&o.query, "query", discover.DefaultQuery, "PromQL query returning one request rate per node")
	f.DurationVar(&o.window, "window", 0, "rate window (default: the longest [range] in --query; 1m for otlp)")
	f.StringVar(&o.nodeLabel, "node-label", discover.DefaultNodeLabel, "label of the query result that names the node")
	f.StringVar(&o.otlpListen, "otlp-listen", ":4317", "OTLP gRPC listen address (--source otlp)")
	f.StringVar(&o.otlpMetric, "otlp-metric", discover.DefaultOTLPMetric, "counter to read from OTLP pushes")
	f.StringVar(&o.otlpNodeAttr, "otlp-node-attribute", discover.DefaultNodeAttr, "resource (or point) attribute naming the node")
	f.StringArrayVar(&o.otlpMatch, "otlp-match", []string{"entrypoint=web"}, "point attribute KEY=VALUE a point must carry (repeatable; empty string: none)")
	f.StringVar(&o.otlpAuth.CertFile, "otlp-tls-cert", "", "serve OTLP over TLS with this certificate (with --otlp-tls-key)")
	f.StringVar(&o.otlpAuth.KeyFile, "otlp-tls-key", "", "key of --otlp-tls-cert")
	f.StringVar(&o.otlpAuth.TokenFile, "otlp-token-file", "", "file holding the bearer token every push must carry (authorization: Bearer TOKEN)")
	f.StringVar(&o.otlpAuth.ClientCAFile, "otlp-client-ca", "", "require OTLP client certificates signed by this CA (mTLS)")
	f.BoolVar(&o.otlpAuth.Insecure, "otlp-insecure", false, "accept OTLP pushes without a token or client certificate (a lab on loopback only)")
	f.IntVar(&o.otlpLimits.MaxInFlight, "otlp-max-in-flight", discover.DefaultOTLPMaxInFlight, "OTLP pushes taken at once; more get RESOURCE_EXHAUSTED")
	f.IntVar(&o.otlpLimits.MaxSeries, "otlp-max-series", discover.DefaultOTLPMaxSeries, "OTLP series held in all")
	f.IntVar(&o.otlpLimits.MaxSeriesPerSource, "otlp-max-series-per-source", discover.DefaultOTLPMaxSeriesPerSource, "OTLP series one source (peer address) may hold")
	f.IntVar(&o.otlpLimits.MaxSeriesBytes, "otlp-max-series-bytes", discover.DefaultOTLPMaxSeriesBytes, "largest OTLP series identity (node, resource, scope and point attributes) in bytes")
	addKubeconfigFlag(f, &o.kubeconfig)
	f.StringVar(&o.gatewaySelector, "gateway-selector", discover.DefaultGatewaySelector, "label selector of the gateway pods")
	f.StringVar(&o.gatewayNamespace, "gateway-namespace", "", "namespace of the gateway pods (default: all)")
	f.StringVar(&o.siteLabel, "site-label", topology.DefaultSiteLabel, "node label whose value names the site")
	f.StringVar(&o.namespace, "namespace", "default", "namespace of the probe Jobs")
	f.StringVar(&o.image, "image", discover.DefaultImage, "image of the probe Job (runs 'ning probe')")
	f.DurationVar(&o.jobTTL, "job-ttl", discover.DefaultJobTTL, "ttlSecondsAfterFinished of the probe Jobs")
	f.DurationVar(&o.jobPeriod, "job-period", discover.DefaultJobPeriod, "at most one probe Job per site per period (also its active deadline)")
	f.IntVar(&o.keepJobs, "keep-jobs", discover.DefaultKeepJobs, "finished probe Jobs to keep; older ones are deleted")
	f.StringVar(&o.owner, "owner", "", "KIND/NAME in --namespace (cronjob, deployment or job) that owns the probe Jobs, so deleting it deletes them")
	f.StringVar(&o.serviceAccount, "service-account", "", "service account of the probe pods")
	f.StringVar(&o.jobTemplate, "job-template", "", "YAML file with the probe pod's template (core/v1 PodTemplateSpec: security context, volumes, env, resources); ning sets the affinity, arguments and labels")
	f.StringArrayVar(&o.probeArgs, "probe-arg", nil, "extra argument for 'ning probe' (repeatable), e.g. --probe-arg=--mqtt-ca=/etc/ning/ca.pem")
	f.BoolVar(&o.once, "once", false, "take one decision and exit")
	f.DurationVar(&o.wait, "wait", 2*time.Minute, "with --once, how long to wait for the rate window to fill")
	f.DurationVar(&o.interval, "interval", time.Minute, "time between decisions")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the decision and the Job it would create; create and publish nothing")
	f.StringVarP(&o.output, "output", "o", "text", "output of each decision: text or json")
	f.StringVar(&o.listen, "listen", ":9811", "address for /healthz and /metrics without --once (empty: none)")
	f.IntVar(&o.queueSize, "queue-size", mqtt.DefaultQueueSize, "reports kept while the broker is unreachable")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	o.mqtt.add(f)
}

func newDiscoverCommand() *cobra.Command {
	o := &discoverOptions{}
	cmd := &cobra.Command{
		Use:   "discover",
		Short: "Find the busiest site from gateway traffic and start latency probing there",
		Long: `discover is phase 1 of the Ning seed. It finds the gateway pods (Traefik by
default) through the Kubernetes API and maps them to nodes and sites (the node
label --site-label; a node without it is a site of its own), learns the request
rate entering at each node from Prometheus (--source prometheus, a PromQL query
returning one rate per node) or from an OTLP gRPC metrics push (--source otlp,
cumulative or delta counters), sums it per site and picks the busiest site.

It then publishes a TrafficReport (ning/v1/traffic, QoS 1, retained) and
creates a Job running 'ning probe --once --publish' pinned to the busiest site
(required node affinity), probing each other site's representative node (a
gateway node with an InternalIP, else any node with one). The Job name is
fixed per site and --job-period, no second Job starts while one for the site
still runs, and finished Jobs beyond --keep-jobs are deleted (besides
ttlSecondsAfterFinished).

Bad data (Prometheus unreachable, an empty result, NaN or negative rates, a
node that is in no known site, an OTLP metric of the wrong type) is logged and
counted in ning_discover_errors_total{reason}; the previous decision stays and
no Job starts. Until the rate window is full the figures are reported as
warming up and nothing is acted on.

--once takes one decision and exits (for a CronJob; with --source otlp it
listens until two points per series arrived, at most --wait). Otherwise it
decides every --interval and serves /healthz and /metrics on --listen.
--dry-run prints the decision and the Job it would create, and changes nothing.`,
		Example: `  ning discover --once --prometheus-url http://prometheus:9090 --namespace ning --image ghcr.io/ning-edge/ning:v0.1
  ning discover --dry-run --once -o json --prometheus-url http://127.0.0.1:9090
  ning discover --source otlp --otlp-listen :4317 --interval 1m --broker tls://broker:8883 --mqtt-ca ca.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd)
			defer stop()
			return runDiscover(ctx, cmd.OutOrStdout(), *o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func parseMatch(kvs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range kvs {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--otlp-match %q: want KEY=VALUE", kv)
		}
		m[k] = v
	}
	return m, nil
}

func (o *discoverOptions) Validate() error {
	var errs []error
	if err := validLogLevel(o.logLevel); err != nil {
		errs = append(errs, err)
	}
	if o.output != "text" && o.output != "json" {
		errs = append(errs, fmt.Errorf("--output %q: want text or json", o.output))
	}
	if o.interval <= 0 || o.jobPeriod < time.Second || o.jobTTL < 0 || o.keepJobs < 0 {
		errs = append(errs, errors.New("--interval must be positive, --job-period at least 1s, --job-ttl and --keep-jobs not negative"))
	}
	if o.source != "prometheus" && o.source != "otlp" {
		errs = append(errs, fmt.Errorf("--source %q: want prometheus or otlp", o.source))
	}
	if _, err := parseMatch(o.otlpMatch); err != nil {
		errs = append(errs, err)
	}
	if o.source == "prometheus" && o.window <= 0 {
		if _, err := discover.QueryWindow(o.query); err != nil {
			errs = append(errs, fmt.Errorf("--query: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (o *discoverOptions) Config() (discover.RunConfig, error) {
	log, err := newLogger(o.logLevel)
	if err != nil {
		return discover.RunConfig{}, err
	}
	match, err := parseMatch(o.otlpMatch)
	if err != nil {
		return discover.RunConfig{}, err
	}
	client, err := kubeClient(o.kubeconfig)
	if err != nil {
		return discover.RunConfig{}, err
	}
	out, format := o.out, o.output
	c := discover.RunConfig{Client: client, Source: o.source,
		Prometheus: discover.PrometheusOptions{URL: o.promURL, Query: o.query, NodeLabel: o.nodeLabel, Window: o.window},
		OTLP: discover.OTLPOptions{Metric: o.otlpMetric, NodeAttr: o.otlpNodeAttr, Match: match, Window: o.window,
			Auth: o.otlpAuth, Limits: o.otlpLimits},
		OTLPListen: o.otlpListen,
		Job: discover.JobOptions{Namespace: o.namespace, Image: o.image, SiteLabel: o.siteLabel, Broker: o.mqtt.url,
			ExtraArgs: o.probeArgs, ServiceAccount: o.serviceAccount, TTL: o.jobTTL, Period: o.jobPeriod, Keep: o.keepJobs},
		Owner:   o.owner,
		Cluster: discover.ClusterOptions{GatewaySelector: o.gatewaySelector, GatewayNamespace: o.gatewayNamespace, SiteLabel: o.siteLabel},
		DryRun:  o.dryRun, QueueSize: o.queueSize, Once: o.once, Wait: o.wait, Interval: o.interval, Listen: o.listen,
		OnResult: func(r *discover.Result) error { return printDecision(out, format, r) }, Log: log}
	if o.jobTemplate != "" {
		data, err := os.ReadFile(o.jobTemplate)
		if err != nil {
			return discover.RunConfig{}, fmt.Errorf("--job-template: %w", err)
		}
		if c.Job.Template, err = discover.ParsePodTemplate(data); err != nil {
			return discover.RunConfig{}, fmt.Errorf("--job-template %s: %w", o.jobTemplate, err)
		}
	}
	if !o.dryRun {
		if c.MQTT, err = o.mqtt.config(); err != nil {
			return discover.RunConfig{}, err
		}
	}
	return c, nil
}

// runDiscover is `ning discover`: each decision is printed to out.
func runDiscover(ctx context.Context, out io.Writer, o discoverOptions) error {
	o.out = out
	return run(ctx, &o, discover.Run)
}

func printDecision(out io.Writer, format string, r *discover.Result) error {
	o := discover.NewOutput(r)
	if o.Job != nil {
		o.Job.ManagedFields = nil
	}
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(o)
	}
	// tabwriter buffers until Flush, which reports any write error.
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintf(tw, "source\t%s (window %s)\n", o.Source, r.Decision.Window)
	if o.WarmingUp {
		_, _ = fmt.Fprintf(tw, "warming up\tthe rate window is not full yet for %s; no decision\n", strings.Join(o.Warming, ", "))
	}
	sites := make([]string, 0, len(o.Sites))
	for s := range o.Sites {
		sites = append(sites, s)
	}
	sort.Strings(sites)
	for _, s := range sites {
		mark := ""
		if s == o.Busiest {
			mark = "  <- busiest"
		}
		_, _ = fmt.Fprintf(tw, "site %s\t%.2f req/s%s\n", s, o.Sites[s], mark)
	}
	switch {
	case o.Job != nil:
		verb := "would create"
		if o.JobCreated {
			verb = "created"
		} else if o.Job.UID != "" {
			verb = "kept"
		}
		_, _ = fmt.Fprintf(tw, "probe job\t%s %s/%s: %s\n", verb, o.Job.Namespace, o.Job.Name, strings.Join(o.Job.Spec.Template.Spec.Containers[0].Args, " "))
	case o.Note != "":
		_, _ = fmt.Fprintf(tw, "probe job\tnone: %s\n", o.Note)
	}
	return tw.Flush()
}
