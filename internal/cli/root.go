// Package cli builds ning's command line: one cobra command per component.
package cli

import (
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// PluginName is the file name kubectl finds its ning plugin by: the binary
// installed or linked as kubectl-ning somewhere on $PATH runs as `kubectl
// ning ...` (kubectl execs it with the arguments after "ning").
const PluginName = "kubectl-ning"

// NewRootFor is NewRoot for the binary started as argv0 (os.Args[0]). Started
// as kubectl-ning, its help and usage lines say `kubectl ning`; the commands
// and their flags are the same either way.
func NewRootFor(argv0 string) *cobra.Command {
	root := NewRoot()
	if strings.TrimSuffix(filepath.Base(argv0), ".exe") == PluginName {
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl ning"}
	}
	return root
}

// NewRoot returns the ning command with every subcommand.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "ning",
		Short: "Latency-aware scheduling for Kubernetes edge clusters",
		Long: `ning places and moves pods so that user requests travel the shortest network
path: it measures the round-trip time between sites, learns where traffic enters
the cluster, and steers replicas toward it, while honouring per-pod delay limits
(the delay_<from>: "<ms>" label), node load and node failures.

Each component is a subcommand of this one binary. Installed or linked as
kubectl-ning on $PATH it is also a kubectl plugin: kubectl ning status,
kubectl ning explain.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newPlaceCommand())
	root.AddCommand(newProbeCommand())
	root.AddCommand(newBrokerCommand())
	root.AddCommand(newSchedulerCommand())
	root.AddCommand(newExtenderCommand())
	root.AddCommand(newBenchCommand())
	root.AddCommand(newDiscoverCommand())
	root.AddCommand(newReschedulerCommand())
	root.AddCommand(newDemoCommand())
	root.AddCommand(newDashboardCommand())
	root.AddCommand(newStatusCommand())
	root.AddCommand(newExplainCommand())
	root.AddCommand(newLabCommand())
	return root
}
