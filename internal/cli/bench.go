package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ning-edge/ning/internal/bench"
)

func newBenchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure ning against the stock Kubernetes scheduler",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newBenchSchedulerCommand())
	cmd.AddCommand(newBenchExtenderCommand())
	cmd.AddCommand(newBenchReportCommand())
	return cmd
}

// benchRun holds what every `ning bench` subcommand shares: the cluster
// shape, output format, log level and CPU profile.
type benchRun struct {
	o                            bench.SchedulerOptions
	output, logLevel, cpuProfile string
}

func (b *benchRun) addFlags(cmd *cobra.Command, what string) {
	f := cmd.Flags()
	f.IntVar(&b.o.Nodes, "nodes", 1000, "nodes to create")
	f.IntVar(&b.o.Pods, "pods", 1000, "pods to schedule through each "+what)
	f.IntVar(&b.o.Sites, "sites", 20, "sites the nodes are spread over")
	f.IntVar(&b.o.PodsPerWorkload, "pods-per-workload", 50, "pods per ReplicaSet")
	f.IntVar(&b.o.Rounds, "rounds", 1, "measurements per "+what+" (the order rotates)")
	f.Uint64Var(&b.o.Seed, "seed", 1, "seed of the random topology")
	f.StringVarP(&b.output, "output", "o", "table", "output format: table or json")
	f.StringVar(&b.logLevel, "log-level", "warn", "log level: debug, info, warn or error (the embedded control plane's and kube-scheduler's klog output included)")
	f.StringVar(&b.cpuProfile, "cpu-profile", "", "write a CPU profile of the whole run (control plane included) to this file")
	f.StringVar(&b.o.ProfileDir, "profile-dir", "", "write a CPU profile of each measured window (control plane included) to this directory, as bench-<round>-<"+what+">.pprof; not with --cpu-profile")
}

// run checks the flags, runs measure (under the CPU profile if asked) and
// prints its result as JSON or through table.
func (b *benchRun) run(cmd *cobra.Command, measure func(context.Context, bench.SchedulerOptions) (any, error), table func(w *errWriter, res any)) error {
	if b.output != "table" && b.output != "json" {
		return fmt.Errorf("--output %q: want table or json", b.output)
	}
	log, err := newLogger(b.logLevel)
	if err != nil {
		return err
	}
	b.o.Log = log
	if b.cpuProfile != "" && b.o.ProfileDir != "" {
		return errors.New("--cpu-profile and --profile-dir: choose one (Go runs one CPU profile at a time)")
	}
	if b.o.ProfileDir != "" {
		// Checked before the cluster starts, not a minute into the run.
		if fi, err := os.Stat(b.o.ProfileDir); err != nil || !fi.IsDir() {
			return fmt.Errorf("--profile-dir %q: not a directory", b.o.ProfileDir)
		}
	}
	if b.cpuProfile != "" {
		stop, err := bench.StartCPUProfile(b.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer stop()
	}
	res, err := measure(cmd.Context(), b.o)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if b.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	w := &errWriter{w: out}
	table(w, res)
	return w.err
}

func newBenchSchedulerCommand() *cobra.Command {
	b := &benchRun{}
	cmd := &cobra.Command{
		Use:   "scheduler --nodes N --pods P [--sites S]",
		Short: "Scheduling throughput: default profile vs ning profile, in one run",
		Long: `scheduler starts a real kube-apiserver in this process (embedded etcd), creates N
nodes spread over S sites (no kubelets, as upstream's scheduler_perf does), and
runs one kube-scheduler with three profiles: Kubernetes' default, ning's, and
the default without PodTopologySpread's scoring (which ning's profile turns off
too). The same P pods (grouped under ReplicaSets, a fifth with a delay_<site>
label) are scheduled by each profile in turn: created with a scheduling gate,
released at once, and timed until the last is bound. It prints pods/s for each
profile, the ratio ning / default, and the fair ratio ning / default without
spread scoring, which is what ning's own plugins cost. With --rounds 2 or more
the order rotates. --profile-dir keeps a CPU profile of each measured window.`,
		Example: `  ning bench scheduler --nodes 1000 --pods 1000 --sites 20
  ning bench scheduler --nodes 5000 --pods 2000 --sites 50 -o json
  ning bench scheduler --rounds 3 --profile-dir /tmp/prof && go tool pprof -top /tmp/prof/bench-*-ning-scheduler.pprof`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return b.run(cmd, func(ctx context.Context, o bench.SchedulerOptions) (any, error) {
				return bench.RunScheduler(ctx, o)
			}, func(w *errWriter, r any) {
				res := r.(*bench.SchedulerResult)
				w.printf("nodes %d, sites %d, pods %d\n", res.Nodes, res.Sites, res.Pods)
				w.printf("default profile  %8.1f pods/s  (%.2f s)\n", res.Default.PodsPerSecond, res.Default.Seconds)
				w.printf("ning profile     %8.1f pods/s  (%.2f s)\n", res.Ning.PodsPerSecond, res.Ning.Seconds)
				w.printf("default profile without spread scoring %8.1f pods/s  (%.2f s)\n", res.NoSpreadScoring.PodsPerSecond, res.NoSpreadScoring.Seconds)
				w.printf("ratio (ning/default) %.3f\n", res.Ratio)
				w.printf("fair ratio (ning/default without spread scoring) %.3f\n", res.FairRatio)
			})
		},
	}
	b.addFlags(cmd, "profile")
	return cmd
}

func newBenchExtenderCommand() *cobra.Command {
	b := &benchRun{}
	cmd := &cobra.Command{
		Use:   "extender --nodes N --pods P [--sites S]",
		Short: "Scheduling throughput: stock scheduler + ning extender vs ning's plugins, in one run",
		Long: `extender starts a real kube-apiserver in this process (embedded etcd), creates N
nodes spread over S sites, a ning extender on loopback, the stock kube-scheduler
calling it (nodeCacheCapable, as deploy/extender-config.yaml: the default
profile without PodTopologySpread's scoring, as ning's own profile; with
--spread-scoring the whole default profile) and ning's scheduler (its plugins). The same P pods (as in bench scheduler) are
scheduled by each in turn, from the release of their scheduling gates to the
last binding. It prints pods/s for each and the ratio (extender / plugins).`,
		Example: `  ning bench extender --nodes 1000 --pods 1000 --sites 20
  ning bench extender --nodes 1000 --pods 2000 --rounds 2 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return b.run(cmd, func(ctx context.Context, o bench.SchedulerOptions) (any, error) {
				return bench.RunExtender(ctx, o)
			}, func(w *errWriter, r any) {
				res := r.(*bench.ExtenderResult)
				w.printf("nodes %d, sites %d, pods %d, stock profile with spread scoring: %t\n", res.Nodes, res.Sites, res.Pods, res.SpreadScoring)
				w.printf("stock scheduler + ning extender  %8.1f pods/s  (%.2f s)\n", res.Extender.PodsPerSecond, res.Extender.Seconds)
				w.printf("ning plugins                     %8.1f pods/s  (%.2f s)\n", res.Plugins.PodsPerSecond, res.Plugins.Seconds)
				w.printf("ratio (extender/plugins) %.3f\n", res.Ratio)
			})
		},
	}
	b.addFlags(cmd, "scheduler")
	cmd.Flags().BoolVar(&b.o.SpreadScoring, "spread-scoring", false,
		"keep PodTopologySpread's scoring in the stock scheduler's profile (the whole default profile)")
	return cmd
}
