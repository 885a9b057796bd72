package cli

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ning-edge/ning/internal/benchreport"
)

func newBenchReportCommand() *cobra.Command {
	var dir, logLevel, probeAccuracy, probeSkipped string
	var quick, probeFailed bool
	var skip []string
	cmd := &cobra.Command{
		Use:   "report [--dir bench]",
		Short: "Write bench/report.md and its plots from one run of every measurement",
		Long: `report runs, in this process and one after the other: scheduling throughput of
the default profile against ning's at 1,000, 5,000 and 10,000 nodes, the extender's at
1,000 nodes (each as ning bench scheduler / extender do, two rounds); the
planner against the exact optimum and the baselines over 1,000 random
instances and the example topologies, and against a lower bound (the
Lagrangian dual) over 50 instances at each of 50 to 1,000 sites; the
planner's time from 10 to 1,000 sites; probe reports through the embedded
broker into the store at 50, 100 and 500 sites (reports/s, the store's cost a
report, memory a site); and the demo's scenario (convergence after a traffic shift, recovery
after a node loss). It writes report.md, quality-gaps.svg and planner-time.svg
to --dir, each figure with the machine, the command and the date. It takes
about 20 minutes; --skip leaves sections out, --quick shrinks them (for
checking the report itself, not for figures).`,
		Example: `  ning bench report --dir bench
  ning bench report --dir /tmp/r --skip throughput,extender`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			o := benchreport.Options{Dir: dir, Quick: quick, Skip: map[string]bool{}, Log: log, ProbeAccuracy: probeAccuracy, ProbeAccuracyFailed: probeFailed, ProbeAccuracySkipped: probeSkipped,
				Command: "ning bench report --dir " + dir}
			known := map[string]bool{"throughput": true, "extender": true, "quality": true, "planner": true, "demo": true, "ingest": true}
			for _, s := range skip {
				s = strings.TrimSpace(s)
				if !known[s] {
					return fmt.Errorf("--skip %q: want throughput, extender, quality, planner, demo or ingest", s)
				}
				o.Skip[s] = true
				o.Command += " --skip " + s
			}
			if quick {
				o.Command += " --quick"
			}
			r, err := benchreport.Run(ctx, o)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", filepath.Join(dir, "report.md"))
			if err == nil && len(r.Errors) > 0 {
				err = fmt.Errorf("%d sections failed: %s", len(r.Errors), strings.Join(r.Errors, "; "))
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "bench", "directory for report.md and the plots")
	f.BoolVar(&quick, "quick", false, "small sizes, for checking the report, not for figures")
	f.StringSliceVar(&skip, "skip", nil, "sections to leave out: throughput, extender, quality, planner, demo, ingest")
	f.StringVar(&probeAccuracy, "probe-accuracy", "", "file with the network-namespace probe accuracy table to include (make bench writes it as root)")
	f.BoolVar(&probeFailed, "probe-accuracy-failed", false, "the test behind --probe-accuracy failed its tolerance: say so in the report")
	f.StringVar(&probeSkipped, "probe-accuracy-skipped", "", "why the probe accuracy was not measured (make bench passes the test's skip message): the report says so")
	f.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error (to stderr; the embedded control plane's klog output included)")
	return cmd
}
