package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/dashboard"
	"github.com/ning-edge/ning/internal/httpserve"
	"github.com/ning-edge/ning/internal/topology"
)

// viewFlags are what `ning dashboard` and `ning status` share: the cluster,
// the scheduler's data sources, and which pods and sites to show.
type viewFlags struct {
	kubeconfig    string
	source        sourceFlags
	schedulerName string
	logLevel      string
}

func (f *viewFlags) add(fs *pflag.FlagSet) {
	addKubeconfigFlag(fs, &f.kubeconfig)
	f.source.add(fs)
	fs.StringVar(&f.schedulerName, "scheduler-name", dashboard.DefaultSchedulerName, "show the pods with this spec.schedulerName")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// collector builds the logger, the client, the store fed by the sources and
// the collector; stop stops the sources.
func (f *viewFlags) collector(ctx context.Context, o dashboard.Options) (c *dashboard.Collector, log *slog.Logger, stop func() error, err error) {
	if log, err = newLogger(f.logLevel); err != nil {
		return nil, nil, nil, err
	}
	client, err := kubeClient(f.kubeconfig)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := f.source.validate(); err != nil {
		return nil, nil, nil, err
	}
	storeCfg, err := f.source.storeConfig()
	if err != nil {
		return nil, nil, nil, err
	}
	store := topology.NewStore(storeCfg, clock.RealClock{})
	o.SiteLabel, o.SchedulerName = f.source.siteLabel, f.schedulerName
	if c, err = dashboard.NewCollector(client, store, o); err != nil {
		return nil, nil, nil, err
	}
	if stop, err = f.source.start(ctx, store, client, legacyregistry.Registerer(), log); err != nil {
		return nil, nil, nil, err
	}
	return c, log, stop, nil
}

func newDashboardCommand() *cobra.Command {
	var (
		f      viewFlags
		listen string
		opts   dashboard.Options
	)
	cmd := &cobra.Command{
		Use:   "dashboard [--kubeconfig FILE] [--listen 127.0.0.1:8080] [--latency-file FILE] [--mqtt ...]",
		Short: "Serve a web page showing sites, RTTs, traffic, replicas and ning's decisions",
		Long: `dashboard watches a cluster (nodes, the pods with schedulerName ning-scheduler,
Events) and ning's data sources, and serves a live web page on --listen:

  - an RTT heatmap between sites (unknown RTTs grey, never 0),
  - traffic per site and each site's nodes,
  - replicas per site over time (--history samples, one every --interval),
  - each workload's replicas per site and the traffic-weighted mean RTT of
    that placement,
  - recent decisions: Events whose reason starts with "Ning" (NingPlacement from
    the scheduler, NingReschedule, NingDelayViolation, NingNodeDown from the
    rescheduler) with their messages.

GET / is the page (it refreshes itself every 2 s), GET /api/snapshot the same
data as JSON (?workload=namespace/name), GET /healthz (503 until the cluster is
listed), GET /metrics. RTT and traffic come from the scheduler's sources:
--latency-file and, with --mqtt, prober and discovery reports.`,
		Example: `  ning dashboard --kubeconfig ~/.kube/config --latency-file examples/edge-city.yaml
  ning dashboard --listen 127.0.0.1:9090 --mqtt --broker tls://broker:8883 --mqtt-ca ca.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			c, log, stopSources, err := f.collector(ctx, opts)
			if err != nil {
				return err
			}
			ln, err := httpserve.Listen("listen", listen)
			if err != nil {
				return errors.Join(err, stopSources())
			}
			mux := httpserve.OpsMux(legacyregistry.DefaultGatherer, c.Healthy)
			mux.Handle("/", dashboard.Handler(c))
			log.Info("serving the dashboard", "url", "http://"+ln.Addr().String()+"/")
			return errors.Join(httpserve.RunWith(ctx, "dashboard", ln, mux, httpserve.Options{}, log, c.Run), stopSources())
		},
	}
	fs := cmd.Flags()
	f.add(fs)
	fs.StringVar(&listen, "listen", "127.0.0.1:8080", "address to serve the dashboard, /healthz and /metrics on")
	fs.IntVar(&opts.History, "history", dashboard.DefaultHistory, "samples of replicas per site to keep")
	fs.DurationVar(&opts.Interval, "interval", dashboard.DefaultInterval, "time between samples of replicas per site")
	fs.IntVar(&opts.Decisions, "decisions", dashboard.DefaultDecisions, "recent decisions to show")
	fs.Float64Var(&opts.PerReplicaRPS, "per-replica-rps", 0, "requests/s one replica serves, for the weighted mean RTT (0: no limit)")
	return cmd
}

func newStatusCommand() *cobra.Command {
	var (
		f               viewFlags
		output, wl      string
		timeout, settle time.Duration
		perReplica      float64
	)
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
arrive. -o json prints the dashboard's snapshot (GET /api/snapshot).`,
		Example: `  ning status --kubeconfig ~/.kube/config --latency-file examples/edge-city.yaml
  ning status --mqtt --broker mqtt://broker:1883 --workload shop/web -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %q: want table or json", output)
			}
			if timeout <= 0 {
				return fmt.Errorf("--timeout %v: want a positive duration", timeout)
			}
			if settle < 0 {
				return fmt.Errorf("--mqtt-wait %v: want a duration of 0 or more", settle)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			s, err := statusSnapshot(ctx, &f, dashboard.Options{PerReplicaRPS: perReplica}, timeout, settle)
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), s, wl, output)
		},
	}
	fs := cmd.Flags()
	f.add(fs)
	fs.StringVarP(&output, "output", "o", "table", "output format: table or json")
	fs.StringVar(&wl, "workload", "", "show only this workload (namespace/name)")
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the cluster to be listed")
	fs.DurationVar(&settle, "mqtt-wait", 3*time.Second, "with --mqtt, how long to collect reports before printing")
	fs.Float64Var(&perReplica, "per-replica-rps", 0, "requests/s one replica serves, for the weighted mean RTT (0: no limit)")
	return cmd
}

// statusSnapshot lists the cluster once and returns its snapshot.
func statusSnapshot(ctx context.Context, f *viewFlags, o dashboard.Options, timeout, settle time.Duration) (dashboard.Snapshot, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, _, stopSources, err := f.collector(ctx, o)
	if err != nil {
		return dashboard.Snapshot{}, err
	}
	defer func() { _ = stopSources() }() // the snapshot is taken; a failed close changes nothing in it
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	wait, cancelWait := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("the cluster was not listed within --timeout %v", timeout))
	defer cancelWait()
	if err := c.WaitSynced(wait); err != nil {
		cancel()
		<-done // Run fails for the same cause
		return dashboard.Snapshot{}, err
	}
	if f.source.mqttEnabled && settle > 0 {
		select {
		case <-time.After(settle):
		case <-ctx.Done():
			return dashboard.Snapshot{}, fmt.Errorf("waiting for MQTT reports: %w", context.Cause(ctx))
		}
	}
	s := c.Snapshot()
	cancel()
	if err := <-done; err != nil {
		return dashboard.Snapshot{}, err
	}
	return s, nil
}

func printStatus(w io.Writer, s dashboard.Snapshot, workload, output string) error {
	if output == "table" {
		return dashboard.WriteTable(w, s, workload)
	}
	s, err := s.Select(workload)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}
