package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ning-edge/ning/examples"
	"github.com/ning-edge/ning/internal/demo"
	"github.com/ning-edge/ning/internal/demo/netns"
	"github.com/ning-edge/ning/internal/logging"
	"github.com/ning-edge/ning/internal/topology"
)

type demoOptions struct {
	file     string
	o        demo.Options
	output   string
	logLevel string
}

func newDemoCommand() *cobra.Command {
	d := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run all of ning on an embedded cluster and show what it does",
		Long: `demo runs ning end to end in this process, with nothing to install: embedded
etcd and the real kube-apiserver, the real ReplicaSet, Deployment and
disruption controllers, simulated kubelets on nodes across the topology's
sites (ning's built-in node simulator: KWOK cannot be embedded at this
Kubernetes version), an embedded MQTT broker, simulated probers publishing
RTTs with realistic noise, simulated gateway traffic read by ning's discovery,
and ning's real scheduler and rescheduler.

The scenario: deploy a sample workload twice (ning-scheduler, and
default-scheduler for comparison), shift most traffic from the busiest site to
the farthest site with traffic, then power off the node running most of ning's
replicas. A live table prints while it runs, and the dashboard (ning dashboard's page:
RTT heatmap, traffic, replicas over time, decisions) is served on
--dashboard; at the end a summary gives the
weighted mean RTT of ning's placement, the default scheduler's and the exact
optimum's, the time to converge after the shift and to recover after the node
loss, and how far the measured RTTs are from the topology's. It runs as a
normal user and leaves no processes, ports or files.

--netns (root; iproute2, iptables and the kernel's NFQUEUE) measures real RTTs
instead of simulating them: one network namespace per site, a veth link
between every pair of sites whose delay (a userspace NFQUEUE delayer; this
kernel may have no sch_netem) reproduces the topology's RTT, and in each
namespace the real prober of ning probe (ICMP echo) measuring the other sites
and publishing to the embedded broker. The namespaces, links and delayers are
removed when the demo ends, also on Ctrl-C or an error; namespaces left by a
demo that was killed outright are removed by the next --netns run. Without root
or a tool it fails at once, naming what is missing.

--keep turns the demo into a playground, the way to try ning without a
cluster: when the scenario ends (its summary printed), the cluster, probers,
traffic, scheduler, rescheduler and dashboard keep running until Ctrl-C, and
it prints KUBECONFIG=<file> on a line of its own, the dashboard's address and
commands to try: apply an example Deployment (ning-scheduler, a delay_<site>
label; its manifest is written beside the kubeconfig), change the traffic
(ning demo traffic set SITE=RPS, or kubectl edit on the ConfigMap
ning/demo-traffic, read every second; a version that is not valid is
refused with a message, counted in ning_demo_traffic_updates_total
{result="rejected"} on the dashboard's /metrics, and the traffic stays as it
was), and ning explain. --duration then bounds only the scenario. Ctrl-C
stops everything and removes the cluster's files, as at the end of a demo.`,
		Example: `  ning demo
  ning demo --keep
  ning demo -f examples/continental.yaml --replicas 8 -o json
  sudo ning demo --netns`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log, err := newLogger(d.logLevel)
			if err != nil {
				return err
			}
			if d.output != "text" && d.output != "json" {
				return fmt.Errorf("--output %q: want text or json", d.output)
			}
			data, name := examples.EdgeCity, "edge-city (built in)"
			if d.file != "" {
				if data, err = os.ReadFile(d.file); err != nil {
					return fmt.Errorf("-f: %w", err)
				}
				name = d.file
			}
			if d.o.Spec, err = topology.ParseFile(name, data); err != nil {
				return fmt.Errorf("topology %s: %w", name, err)
			}
			if d.o.Netns {
				if err := netns.Check(); err != nil {
					return fmt.Errorf("demo: %w", err)
				}
			}
			d.o.SpecName, d.o.Log = name, log
			out := cmd.OutOrStdout()
			if d.output == "text" {
				d.o.Out = out
			}
			d.o.Messages = cmd.ErrOrStderr()
			printSummary := func(sum *demo.Summary) error {
				if d.output == "json" {
					enc := json.NewEncoder(out)
					enc.SetIndent("", "  ")
					return enc.Encode(sum)
				}
				return sum.Print(out)
			}
			if d.o.Keep {
				// The summary prints when the scenario ends; the guide goes
				// to stdout unless that is JSON.
				d.o.Ended = printSummary
				if d.output == "text" {
					d.o.Guide = out
				}
			}
			sum, err := demo.Run(ctx, d.o)
			if sum != nil && !d.o.Keep {
				if perr := printSummary(sum); perr != nil {
					return perr
				}
			}
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&d.file, "file", "f", "", "topology YAML or CSV (default: the built-in edge-city example)")
	f.IntVar(&d.o.Replicas, "replicas", 6, "replicas of the sample workload")
	f.Float64Var(&d.o.PerReplicaRPS, "per-replica-rps", 0, "traffic one replica serves (default: 1.25 x total traffic / replicas)")
	f.DurationVar(&d.o.Duration, "duration", 3*time.Minute, "longest the demo (with --keep: its scenario) may run")
	f.BoolVar(&d.o.Keep, "keep", false, "after the scenario, keep the cluster and all of ning running as a playground until Ctrl-C, and print its KUBECONFIG and commands to try")
	f.DurationVar(&d.o.Interval, "interval", 2*time.Second, "the rescheduler's cycle")
	f.DurationVar(&d.o.NodeDownAfter, "node-down-after", 20*time.Second, "the rescheduler's node-down delay")
	f.DurationVar(&d.o.TableEvery, "table-every", 5*time.Second, "how often the live table prints")
	f.Uint64Var(&d.o.Seed, "seed", 1, "seed of the simulated noise")
	f.BoolVar(&d.o.Netns, "netns", false, "real probers measuring RTT between network namespaces, one per site, over links delayed as the topology says (root; needs ip, iptables and NFQUEUE)")
	f.StringVarP(&d.output, "output", "o", "text", "text (live table and summary) or json (summary only)")
	f.StringVar(&d.logLevel, "log-level", "warn", "debug, info, warn or error (to stderr)")
	f.StringVar(&d.o.Dashboard, "dashboard", "127.0.0.1:8080", "serve the dashboard on this address while the demo runs (a free port if it is taken; empty: none)")
	cmd.AddCommand(newDemoNetnsLabCommand(), newDemoTrafficCommand())
	return cmd
}

// newDemoNetnsLabCommand is the helper process of `ning demo --netns`: it
// builds the site namespaces and runs the real probers, driven over stdin
// and stdout by the demo (netns.Serve). It is not for people.
func newDemoNetnsLabCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "netns-lab",
		Short:  "the helper process of ning demo --netns (not for direct use)",
		Hidden: true,
		Args:   cobra.NoArgs,
		// The demo reports the helper's error (its "error" reply).
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log, err := logging.Setup(cmd.ErrOrStderr(), "warn")
			if err != nil {
				return err
			}
			return netns.Serve(ctx, cmd.InOrStdin(), cmd.OutOrStdout(), log)
		},
	}
}

// newDemoTrafficCommand changes the traffic of a running playground
// (ning demo --keep) through its ConfigMap.
func newDemoTrafficCommand() *cobra.Command {
	traffic := &cobra.Command{
		Use:   "traffic",
		Short: "Change the traffic of a running playground (ning demo --keep)",
		Args:  cobra.NoArgs,
	}
	var kubeconfig string
	set := &cobra.Command{
		Use:   "set SITE=RPS [SITE=RPS...]",
		Short: "Set the req/s entering at sites of a running playground (ning demo --keep)",
		Long: `set changes the traffic entering at the given sites of the playground that
ning demo --keep runs (the other sites keep theirs), through its ConfigMap
ning/demo-traffic, which the demo reads every second; it prints every site's
traffic. A site the topology does not have, a rate that is not a finite
number of 0 or more, or no traffic left anywhere is refused and changes
nothing. Use the kubeconfig the playground printed (KUBECONFIG=...).`,
		Example: `  ning demo traffic set airport=500
  ning demo traffic set downtown=50 airport=600 --kubeconfig /tmp/ning-devcluster-123/kubeconfig`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext(cmd)
			defer stop()
			set, err := demo.ParseAssignments(args)
			if err != nil {
				return fmt.Errorf("demo traffic set: %w", err)
			}
			client, err := kubeClient(kubeconfig)
			if err != nil {
				return fmt.Errorf("demo traffic set: %w", err)
			}
			traffic, err := demo.SetTraffic(ctx, client, set)
			if err != nil {
				return fmt.Errorf("demo traffic set: %w", err)
			}
			sites := make([]string, 0, len(traffic))
			for s := range traffic {
				sites = append(sites, s)
			}
			sort.Strings(sites)
			for _, s := range sites {
				if _, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\t%g req/s\n", s, traffic[s]); err != nil {
					return err
				}
			}
			return nil
		},
	}
	addKubeconfigFlag(set.Flags(), &kubeconfig)
	traffic.AddCommand(set)
	return traffic
}
