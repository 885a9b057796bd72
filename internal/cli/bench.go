package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"

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
	return cmd
}

func newBenchSchedulerCommand() *cobra.Command {
	o := bench.SchedulerOptions{}
	var output, logLevel, cpuProfile string
	cmd := &cobra.Command{
		Use:   "scheduler --nodes N --pods P [--sites S]",
		Short: "Scheduling throughput: default profile vs ning profile, in one run",
		Long: `scheduler starts a real kube-apiserver in this process (embedded etcd), creates N
nodes spread over S sites (no kubelets, as upstream's scheduler_perf does), and
runs one kube-scheduler with two profiles: Kubernetes' default and ning's. The
same P pods (grouped under ReplicaSets, a fifth with a delay_<site> label) are
scheduled by each profile in turn: created with a scheduling gate, released at
once, and timed until the last is bound. It prints pods/s for each profile and
their ratio (ning / default). With --rounds 2 or more the order alternates.`,
		Example: `  ning bench scheduler --nodes 1000 --pods 1000 --sites 20
  ning bench scheduler --nodes 5000 --pods 2000 --sites 50 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output %q: want table or json", output)
			}
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			o.Log = log
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("--cpu-profile: %w", err)
				}
				defer func() { _ = f.Close() }()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("--cpu-profile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			res, err := bench.RunScheduler(cmd.Context(), o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			w := &errWriter{w: out}
			w.printf("nodes %d, sites %d, pods %d\n", res.Nodes, res.Sites, res.Pods)
			w.printf("default profile  %8.1f pods/s  (%.2f s)\n", res.Default.PodsPerSecond, res.Default.Seconds)
			w.printf("ning profile     %8.1f pods/s  (%.2f s)\n", res.Ning.PodsPerSecond, res.Ning.Seconds)
			w.printf("ratio (ning/default) %.3f\n", res.Ratio)
			return w.err
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Nodes, "nodes", 1000, "nodes to create")
	f.IntVar(&o.Pods, "pods", 1000, "pods to schedule with each profile")
	f.IntVar(&o.Sites, "sites", 20, "sites the nodes are spread over")
	f.IntVar(&o.PodsPerWorkload, "pods-per-workload", 50, "pods per ReplicaSet")
	f.IntVar(&o.Rounds, "rounds", 1, "measurements per profile (the order alternates)")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the random topology")
	f.StringVarP(&output, "output", "o", "table", "output format: table or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile of the whole run (control plane included) to this file")
	return cmd
}
