package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/probe"
	"github.com/ning-edge/ning/internal/topology"
)

type probeOptions struct {
	site, node  string
	targets     []string
	targetsFile string
	count       int
	interval    time.Duration
	timeout     time.Duration
	methods     string
	udpPort     int
	tcpPort     int
	once        bool
	publish     bool
	output      string
	period      time.Duration
	jitter      float64
	listen      string
	procRoot    string
	queueSize   int
	logLevel    string
	mqtt        mqttFlags

	fromAPI    bool
	allNodes   bool
	kubeconfig string
	siteLabel  string

	out io.Writer // --once's report
}

func newProbeCommand() *cobra.Command {
	o := &probeOptions{}
	cmd := &cobra.Command{
		Use:   "probe (--site SITE --target SITE[/NODE]=HOST[:PORT] ... | --targets-from-api [--all-nodes])",
		Short: "Measure RTT to other sites and publish LatencyReports",
		Long: `probe measures the round-trip time from this node to each target, reads this
node's CPU utilisation and pressure (PSI), and produces a LatencyReport.

Methods, in fallback order (--methods): ICMP echo on a raw socket, ICMP on an
unprivileged datagram socket, UDP echo (the target's port, or --udp-port), TCP
connect (the target's port, or --tcp-port). The next method is tried when one
cannot run or gets no reply; the method used is in the report.

With --targets-from-api the targets are the cluster's nodes, re-listed every
round: one node per site by default (the Ready node with an InternalIP whose
name sorts first), every node with --all-nodes; a node's site is its
--site-label (a node without it is a site of its own), and the prober's own
site is skipped. --site then defaults to this node's site.

With --once it runs one round, prints the report and exits (no broker needed).
Otherwise it probes every --period (plus random jitter), publishes each report
on ning/v1/latency/<site> (QoS 1, retained) and serves /healthz, /metrics and
/scores on --listen.`,
		Example: `  ning probe --once --site dallas --target toronto=10.0.1.1 --target austin=10.0.2.1 -o json
  ning probe --targets-from-api --node "$NODE_NAME" --udp-port 0 --tcp-port 10250
  ning probe --site dallas --targets-file /etc/ning/targets --broker tls://broker:8883 --mqtt-ca ca.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd)
			defer stop()
			return runProbe(ctx, cmd.OutOrStdout(), *o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func (o *probeOptions) AddFlags(f *pflag.FlagSet) {
	host, _ := os.Hostname()
	f.StringVar(&o.site, "site", "", "site this node belongs to (required unless --targets-from-api reads it from this node's label)")
	f.StringVar(&o.node, "node", envOr("NODE_NAME", host), "this node's name (default $NODE_NAME, else the host name)")
	f.StringArrayVar(&o.targets, "target", nil, "target SITE[/NODE]=HOST[:PORT] (repeatable)")
	f.StringVar(&o.targetsFile, "targets-file", "", "file with one SITE[/NODE]=HOST[:PORT] a line")
	f.IntVar(&o.count, "count", 5, "probes per target per round")
	f.DurationVar(&o.interval, "interval", 200*time.Millisecond, "gap between probes to one target")
	f.DurationVar(&o.timeout, "timeout", time.Second, "how long one probe waits for its reply")
	f.StringVar(&o.methods, "methods", "icmp,udp,tcp", "methods in fallback order: icmp, icmp-raw, icmp-udp, udp, tcp")
	f.IntVar(&o.udpPort, "udp-port", 7, "UDP echo port for targets without a port (0: skip UDP)")
	f.IntVar(&o.tcpPort, "tcp-port", 0, "TCP port for targets without a port (0: skip TCP)")
	f.BoolVar(&o.once, "once", false, "run one round, print it and exit")
	f.BoolVar(&o.publish, "publish", false, "with --once, also publish the report to the broker before exiting")
	f.StringVarP(&o.output, "output", "o", "json", "--once output: json (protojson of LatencyReport)")
	f.DurationVar(&o.period, "period", 30*time.Second, "time between rounds")
	f.Float64Var(&o.jitter, "jitter", 0.2, "extra random delay between rounds, as a share of --period (0..1)")
	f.StringVar(&o.listen, "listen", "127.0.0.1:9810", "address for /healthz, /metrics and /scores (empty: none); the chart binds the pod IP")
	f.StringVar(&o.procRoot, "proc", "/proc", "procfs root to read CPU and PSI from")
	f.IntVar(&o.queueSize, "queue-size", mqtt.DefaultQueueSize, "reports kept while the broker is unreachable (oldest dropped beyond)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.BoolVar(&o.fromAPI, "targets-from-api", false, "probe the cluster's nodes (one per site), listed from the Kubernetes API every round")
	f.BoolVar(&o.allNodes, "all-nodes", false, "with --targets-from-api, probe every node, not one per site")
	addKubeconfigFlag(f, &o.kubeconfig) // read with --targets-from-api
	f.StringVar(&o.siteLabel, "site-label", topology.DefaultSiteLabel, "node label naming a node's site")
	o.mqtt.add(f)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func (o *probeOptions) Validate() error {
	var errs []error
	if err := validLogLevel(o.logLevel); err != nil {
		errs = append(errs, err)
	}
	if o.once && o.output != "json" {
		errs = append(errs, fmt.Errorf("--output %q: want json", o.output))
	}
	if o.jitter < 0 || o.jitter > 1 {
		errs = append(errs, fmt.Errorf("--jitter %v: want 0..1", o.jitter))
	}
	if o.count <= 0 || o.interval <= 0 || o.timeout <= 0 || o.period <= 0 {
		errs = append(errs, errors.New("--count, --interval, --timeout and --period must be positive"))
	}
	if o.allNodes && !o.fromAPI {
		errs = append(errs, errors.New("--all-nodes needs --targets-from-api"))
	}
	for _, s := range o.targets {
		if _, err := probe.ParseTarget(s); err != nil {
			errs = append(errs, fmt.Errorf("--target: %w", err))
		}
	}
	static := len(o.targets) > 0 || o.targetsFile != ""
	if !static && !o.fromAPI {
		errs = append(errs, errNoTargets)
	}
	if static && o.fromAPI {
		errs = append(errs, errors.New("--targets-from-api does not mix with --target or --targets-file"))
	}
	if _, err := probe.ParseMethods(o.methods); err != nil {
		errs = append(errs, fmt.Errorf("--methods: %w", err))
	}
	return errors.Join(errs...)
}

var errNoTargets = errors.New("no targets: give --target, --targets-file or --targets-from-api")

// targetList reads --targets-file and adds the --target flags.
func (o *probeOptions) targetList() ([]probe.Target, error) {
	var out []probe.Target
	if o.targetsFile != "" {
		data, err := os.ReadFile(o.targetsFile)
		if err != nil {
			return nil, fmt.Errorf("reading targets: %w", err)
		}
		ts, err := probe.ParseTargets(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.targetsFile, err)
		}
		out = append(out, ts...)
	}
	for _, s := range o.targets {
		t, err := probe.ParseTarget(s)
		if err != nil {
			return nil, fmt.Errorf("--target: %w", err)
		}
		out = append(out, t)
	}
	if len(out) == 0 && !o.fromAPI {
		return nil, errNoTargets
	}
	return out, nil
}

func (o *probeOptions) Config() (probe.Config, error) {
	log, err := newLogger(o.logLevel)
	if err != nil {
		return probe.Config{}, err
	}
	targets, err := o.targetList()
	if err != nil {
		return probe.Config{}, err
	}
	methods, err := probe.ParseMethods(o.methods)
	if err != nil {
		return probe.Config{}, fmt.Errorf("--methods: %w", err)
	}
	var mc mqtt.Config
	if !o.once || o.publish {
		if mc, err = o.mqtt.config(); err != nil {
			return probe.Config{}, err
		}
	}
	c := probe.Config{Site: o.site, Node: o.node, Targets: targets, ProcRoot: o.procRoot,
		Options: probe.Options{Count: o.count, Interval: o.interval, Timeout: o.timeout, Methods: methods, UDPPort: o.udpPort, TCPPort: o.tcpPort},
		Once:    o.once, Publish: o.publish, Out: o.out, Period: o.period, Jitter: o.jitter,
		MQTT: mc, QueueSize: o.queueSize, Listen: o.listen, Log: log}
	if o.fromAPI {
		client, err := kubeClient(o.kubeconfig)
		if err != nil {
			return probe.Config{}, err
		}
		c.Discovery = &probe.Discovery{Client: client, SiteLabel: o.siteLabel, AllNodes: o.allNodes, Self: o.node, SelfSite: o.site, Log: log}
	}
	return c, nil
}

// runProbe is `ning probe`: its --once report goes to out.
func runProbe(ctx context.Context, out io.Writer, o probeOptions) error {
	o.out = out
	return run(ctx, &o, probe.Run)
}
