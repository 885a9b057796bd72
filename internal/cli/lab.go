package cli

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ning-edge/ning/internal/lab"
)

type labOptions struct {
	topology, binDir, chart, values, controlSite string
	unprivilegedICMP                             bool
}

func (o labOptions) config(log *slog.Logger) lab.Config {
	return lab.Config{Topology: o.topology, ControlSite: o.controlSite, BinDir: o.binDir,
		Chart: o.chart, Values: o.values, UnprivilegedICMP: o.unprivilegedICMP, Log: log}
}

func (o labOptions) args() []string {
	return []string{"lab", "serve", "--topology", o.topology, "--bin-dir", o.binDir, "--chart", o.chart,
		"--values", o.values, "--control-site", o.controlSite, fmt.Sprintf("--unprivileged-icmp=%t", o.unprivilegedICMP)}
}

func newLabCommand() *cobra.Command {
	o := labOptions{}
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run a real multi-site cluster on this machine and drive faults in it (root)",
		Long: `lab runs a real Kubernetes cluster on one machine (docs/lab.md): one network
namespace per site of a topology file, each with its own containerd, a real
kubelet and kube-proxy (iptables mode); the real kube-controller-manager and
CoreDNS beside an embedded etcd and kube-apiserver; WAN links delayed to the
topology's RTTs by ning's NFQUEUE delayer; and ning installed from its Helm
chart. It needs root and the binaries of make lab-bins and make images.

"ning lab up" starts the lab's daemon and returns once every node and every
ning pod is Ready; its last line is KUBECONFIG=<path>. The other commands
drive the running lab through the daemon's socket and print what they did.`,
	}
	up := &cobra.Command{
		Use:   "up",
		Short: "Start the lab and leave it running (cleans an earlier lab's leftovers first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, err := lab.LoadPlan(o.topology, o.controlSite)
			if err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return lab.Start(ctx, cmd.OutOrStdout(), self, o.args(), plan, o.binDir)
		},
	}
	serve := &cobra.Command{
		Use:    "serve",
		Short:  "The lab's daemon (ning lab up starts it)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return lab.Serve(ctx, o.config(slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))))
		},
	}
	for _, c := range []*cobra.Command{up, serve} {
		f := c.Flags()
		f.StringVar(&o.topology, "topology", "test/lab/topology.yaml", "topology file (sites and RTTs; one node per site)")
		f.StringVar(&o.binDir, "bin-dir", "bin/lab", "directory of kubelet, kube-controller-manager, kube-proxy, coredns and images/")
		f.StringVar(&o.chart, "chart", "deploy/helm/ning", "ning's Helm chart (empty: do not install ning)")
		f.StringVar(&o.values, "values", "test/lab/values.yaml", "values files for the chart, comma-separated (a later one overrides an earlier)")
		f.StringVar(&o.controlSite, "control-site", "cloud", "site the control plane sits beside (its links get that site's RTTs; empty: undelayed)")
		f.BoolVar(&o.unprivilegedICMP, "unprivileged-icmp", false, "containerd's enable_unprivileged_icmp (false: containerd 1.6's default; true: 2.x's)")
	}
	down := &cobra.Command{
		Use:   "down",
		Short: "Stop the lab and remove everything it created (also after a crash)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return lab.Down(cmd.Context(), cmd.OutOrStdout())
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Print the running lab's sites, processes, links and bring-up phases",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := lab.GetStatus(cmd.Context())
			if err != nil {
				return err
			}
			return printLabStatus(cmd, st)
		},
	}
	site := &cobra.Command{
		Use:   "site stop|start|cut-control|isolate|restore SITE",
		Short: "Power a site off or on, cut its control-plane link or all its links, or restore them",
		Example: `  ning lab site stop airport        # SIGKILL its kubelet, kube-proxy, containerd and pods
  ning lab site start airport
  ning lab site cut-control airport # drop its traffic to and from the control plane only
  ning lab site isolate airport     # drop everything on its WAN link
  ning lab site restore airport`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return lab.Do(cmd.Context(), cmd.OutOrStdout(), "site", url.Values{"action": {args[0]}, "name": {args[1]}})
		},
	}
	var rtt string
	link := &cobra.Command{
		Use:     "link set A B --rtt DURATION",
		Short:   "Set the RTT between two sites",
		Example: `  ning lab link set downtown airport --rtt 40ms`,
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "set" {
				return fmt.Errorf("link %s: want link set A B --rtt DURATION", args[0])
			}
			return lab.Do(cmd.Context(), cmd.OutOrStdout(), "link", url.Values{"a": {args[1]}, "b": {args[2]}, "rtt": {rtt}})
		},
	}
	link.Flags().StringVar(&rtt, "rtt", "", "round-trip time, e.g. 40ms (half each way)")
	_ = link.MarkFlagRequired("rtt")
	cmd.AddCommand(up, serve, down, status, site, link)
	return cmd
}

func printLabStatus(cmd *cobra.Command, st *lab.Status) error {
	w := cmd.OutOrStdout()
	state := "bringing up"
	if st.Ready {
		state = "ready"
	}
	if st.Error != "" {
		state = "failed: " + st.Error
	}
	_, _ = fmt.Fprintf(w, "lab %s\nKUBECONFIG=%s\n\n%-14s %-16s %-12s %-16s %-5s %s\n", state, st.Kubeconfig, "SITE", "NODE", "NODE IP", "POD NET", "POWER", "LINKS")
	for _, s := range st.Sites {
		_, _ = fmt.Fprintf(w, "%-14s %-16s %-12s %-16s %-5s %s\n", s.Name, s.Node, s.NodeIP, s.PodNet, s.Power, s.Links)
	}
	_, _ = fmt.Fprintln(w, "\nRTT (ms):")
	for k, v := range st.RTTms {
		_, _ = fmt.Fprintf(w, "  %-34s %6.1f\n", k, v)
	}
	_, _ = fmt.Fprintln(w, "\nprocesses:")
	for k, v := range st.Pids {
		_, _ = fmt.Fprintf(w, "  %-34s pid %d\n", k, v)
	}
	return nil
}
