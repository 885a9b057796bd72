// Package cli builds ning's command line: one cobra command per component.
package cli

import (
	"github.com/spf13/cobra"
)

// NewRoot returns the ning command with every subcommand.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "ning",
		Short: "Latency-aware scheduling for Kubernetes edge clusters",
		Long: `ning places and moves pods so that user requests travel the shortest network
path: it measures the round-trip time between sites, learns where traffic enters
the cluster, and steers replicas toward it, while honouring per-pod delay limits
(the delay_<from>: "<ms>" label), node load and node failures.

Each component is a subcommand of this one binary.`,
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
	root.AddCommand(newLabCommand())
	return root
}
