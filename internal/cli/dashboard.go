package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/component-base/metrics/legacyregistry"

	"github.com/ning-edge/ning/internal/dashboard"
	"github.com/ning-edge/ning/internal/explain"
	"github.com/ning-edge/ning/internal/placement"
)

// viewOptions are what `ning dashboard` and `ning status` share: the
// cluster, the scheduler's data sources, and which pods and sites to show.
type viewOptions struct {
	kube          kubeFlags
	source        sourceOptions
	schedulerName string
	logLevel      string
	delayLayers   string
	dashboard     dashboard.Options
}

func (o *viewOptions) AddFlags(fs *pflag.FlagSet) {
	o.kube.AddFlags(fs)
	o.source.AddFlags(fs)
	fs.StringVar(&o.schedulerName, "scheduler-name", dashboard.DefaultSchedulerName, "show the pods with this spec.schedulerName")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.delayLayers, "delay-layers", "", "comma-separated delays (e.g. 30ms,80ms) whose delay zones to show, besides each delay_<from> value on the pods shown (the scheduler's delayLayersMs)")
}

func (o *viewOptions) Validate() error {
	_, err := placement.ParseDelayLayers(o.delayLayers)
	if err != nil {
		err = fmt.Errorf("--delay-layers: %w", err)
	}
	return errors.Join(o.kube.Validate(), validLogLevel(o.logLevel), o.source.Validate(), err)
}

// Config returns the view and the logger.
func (o *viewOptions) Config() (dashboard.View, *slog.Logger, error) {
	ns, err := o.kube.namespace()
	if err != nil {
		return dashboard.View{}, nil, err
	}
	r, err := o.source.reader(o.logLevel, o.kube)
	if err != nil {
		return dashboard.View{}, nil, err
	}
	d := o.dashboard
	d.SiteLabel, d.SchedulerName, d.Namespace = o.source.siteLabel, o.schedulerName, ns
	if d.DelayLayersMs, err = placement.ParseDelayLayers(o.delayLayers); err != nil {
		return dashboard.View{}, nil, fmt.Errorf("--delay-layers: %w", err)
	}
	return dashboard.View{Client: r.client, Store: o.source.store(), Sources: r.sources, Options: d}, r.log, nil
}

type dashboardOptions struct {
	view    viewOptions
	profile profileOptions
	listen  string
	// measured is the lab report to show; measuredRouting and
	// measuredScenario which of its runs.
	measured, measuredRouting, measuredScenario string
}

func (o *dashboardOptions) AddFlags(fs *pflag.FlagSet) {
	o.view.AddFlags(fs)
	o.profile.AddFlags(fs)
	d := &o.view.dashboard
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to serve the dashboard, /healthz and /metrics on")
	fs.IntVar(&d.History, "history", dashboard.DefaultHistory, "samples of replicas per site to keep")
	fs.DurationVar(&d.Interval, "interval", dashboard.DefaultInterval, "time between samples of replicas per site")
	fs.IntVar(&d.Decisions, "decisions", dashboard.DefaultDecisions, "recent decisions to show")
	fs.Float64Var(&d.PerReplicaRPS, "per-replica-rps", 0, "requests/s one replica serves, for the weighted mean RTT (0: no limit)")
	fs.StringVar(&o.measured, "measured", "", "the lab benchmark's report (bench/lab.json) whose measured response times of ning, the default scheduler and the optimum to show beside the modelled weighted RTT")
	fs.StringVar(&o.measuredRouting, "measured-routing", "plain", "with --measured, the report's routing to show (plain or preferClose in bench/lab.json)")
	fs.StringVar(&o.measuredScenario, "measured-scenario", "steady", "with --measured, the report's scenario to show (steady, shift or nodeloss in bench/lab.json)")
}

func (o *dashboardOptions) Validate() error {
	return errors.Join(o.view.Validate(), o.profile.Validate())
}

// loadMeasured reads --measured, if given, at start-up.
func (o *dashboardOptions) loadMeasured() (*dashboard.Measured, error) {
	if o.measured == "" {
		return nil, nil
	}
	m, err := dashboard.LoadMeasured(o.measured, o.measuredRouting, o.measuredScenario)
	if err != nil {
		return nil, fmt.Errorf("--measured: %w", err)
	}
	return m, nil
}

func (o *dashboardOptions) Config() (dashboard.RunConfig, error) {
	v, log, err := o.view.Config()
	if err != nil {
		return dashboard.RunConfig{}, err
	}
	if v.Options.Measured, err = o.loadMeasured(); err != nil {
		return dashboard.RunConfig{}, err
	}
	args := o.profile.Args()
	pages := func(v dashboard.View) dashboard.Explainer { return explain.Pages{View: v, Args: args} }
	return dashboard.RunConfig{View: v, Listen: o.listen, Gatherer: legacyregistry.DefaultGatherer, Log: log, Explain: pages}, nil
}

// onceOptions are what the commands that read the cluster and the sources
// once and print (`ning status`, `ning explain`) share beyond viewOptions:
// -o, --timeout, --mqtt-wait and --per-replica-rps.
type onceOptions struct {
	view            viewOptions
	output          string
	timeout, settle time.Duration
	out             io.Writer
}

func (o *onceOptions) AddFlags(fs *pflag.FlagSet) {
	o.view.AddFlags(fs)
	fs.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long to wait for the cluster to be listed")
	fs.DurationVar(&o.settle, "mqtt-wait", 3*time.Second, "with --mqtt, how long to collect reports before printing")
	fs.Float64Var(&o.view.dashboard.PerReplicaRPS, "per-replica-rps", 0, "requests/s one replica serves, for the weighted mean RTT (0: no limit)")
}

func (o *onceOptions) Validate() error {
	errs := []error{o.view.Validate()}
	if o.output != "table" && o.output != "json" {
		errs = append(errs, fmt.Errorf("-o %q: want table or json", o.output))
	}
	if o.timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout %v: want a positive duration", o.timeout))
	}
	if o.settle < 0 {
		errs = append(errs, fmt.Errorf("--mqtt-wait %v: want a duration of 0 or more", o.settle))
	}
	return errors.Join(errs...)
}

// inNamespace names an object as kubectl does: "namespace/name" as given,
// a bare name in ns (from -n or the context).
func inNamespace(ns, name string) string {
	if ns != "" && name != "" && !strings.Contains(name, "/") {
		return ns + "/" + name
	}
	return name
}

type statusOptions struct {
	once onceOptions
	wl   string
}

func (o *statusOptions) AddFlags(fs *pflag.FlagSet) {
	o.once.AddFlags(fs)
	fs.StringVar(&o.wl, "workload", "", "show only this workload (namespace/name, or name with a namespace from -n or the context)")
}

func (o *statusOptions) Validate() error { return o.once.Validate() }

func (o *statusOptions) Config() (dashboard.StatusConfig, error) {
	v, _, err := o.once.view.Config()
	if err != nil {
		return dashboard.StatusConfig{}, err
	}
	wl := inNamespace(v.Options.Namespace, o.wl)
	return dashboard.StatusConfig{View: v, Timeout: o.once.timeout, Settle: o.once.settle, Workload: wl, Output: o.once.output, Out: o.once.out}, nil
}

func newDashboardCommand() *cobra.Command {
	o := &dashboardOptions{}
	cmd := &cobra.Command{
		Use:   "dashboard [--kubeconfig FILE] [--listen 127.0.0.1:8080] [--latency-file FILE] [--mqtt ...]",
		Short: "Serve a web page showing sites, RTTs, traffic, replicas and ning's decisions",
		Long: `dashboard watches a cluster (nodes, the pods with schedulerName ning-scheduler,
Events) and ning's data sources, and serves a live web page on --listen:

  - an RTT heatmap between sites (unknown RTTs grey, never 0),
  - traffic per site and each site's nodes,
  - replicas per site over time, stacked (--history samples, one every
    --interval),
  - each workload's replicas per site and the traffic-weighted mean RTT of
    that placement,
  - recent decisions: the scheduler's placement notes (NingPlacement, the pods'
    ning.io/placement annotation) and Events whose reason starts with "Ning"
    (NingReschedule, NingDelayViolation, NingNodeDown from the rescheduler)
    with their messages;
  - each workload's explain page (GET /explain/deployment/NS/NAME or
    /explain/pod/NS/NAME): ning explain's table, reasoned with
    --unknown-rtt as ning explain does;
  - with --measured bench/lab.json, the lab benchmark's measured response
    times (p50, p95, p99) of ning, the default scheduler and the optimum for
    --measured-routing and --measured-scenario, beside the weighted RTT
    modelled for each placement. A file that cannot be read or lacks that
    run stops the command at start-up.

GET / is the page (it refreshes itself every 2 s), GET /api/snapshot the same
data as JSON (?workload=namespace/name), GET /healthz (503 until the cluster is
listed), GET /metrics. RTT and traffic come from the scheduler's sources:
--latency-file and, with --mqtt, prober and discovery reports. --context,
-n/--namespace and -A/--all-namespaces are kubectl's, as in ning status.`,
		Example: `  ning dashboard --kubeconfig ~/.kube/config --latency-file examples/edge-city.yaml
  ning dashboard --listen 127.0.0.1:9090 --mqtt --broker tls://broker:8883 --mqtt-ca ca.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd)
			defer stop()
			return run(ctx, o, dashboard.Run)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func newStatusCommand() *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status [--kubeconfig FILE] [-o table|json] [--workload NAMESPACE/NAME] [--latency-file FILE] [--mqtt ...]",
		Short: "Print the sites, RTTs, traffic, replicas per site and last decisions once",
		Long: `status lists the cluster (nodes, the pods with schedulerName ning-scheduler,
Events) once, reads ning's data sources, and prints the table ning demo and the
dashboard show: per site its ready nodes, the RTT from the busiest traffic site
(unknown when not measured or stale, never 0), its traffic and each workload's
replicas; then per workload its replicas, pending pods, the traffic-weighted mean
RTT of its placement and the last decision (an Event whose reason starts with
"Ning").

A workload is the set of pods one controller owns; --workload namespace/name
names it by its controller (a ReplicaSet) or its Deployment. With --mqtt,
status first listens for --mqtt-wait so that the broker's retained reports
arrive. -o json prints the dashboard's snapshot (GET /api/snapshot).

The cluster flags are kubectl's: --context, -n/--namespace (pods and Events
of one namespace; by default the context's namespace when it sets one, else
every namespace), -A/--all-namespaces; with a namespace, --workload NAME
means NAMESPACE/NAME. Installed or linked as kubectl-ning, this is
kubectl ning status.`,
		Example: `  ning status --kubeconfig ~/.kube/config --latency-file examples/edge-city.yaml
  ning status --mqtt --broker mqtt://broker:1883 --workload shop/web -o json
  kubectl ning status --context edge -n shop --workload web`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd)
			defer stop()
			o.once.out = cmd.OutOrStdout()
			return run(ctx, o, dashboard.Status)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
