package demo

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ning-edge/ning/internal/dashboard"
)

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// liveTable prints the table every TableEvery until ctx ends.
func (c *Cluster) liveTable(ctx context.Context) error {
	t := time.NewTicker(c.o.TableEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		c.printTable(ctx)
	}
}

// printTable prints the table from the dashboard's snapshots once both
// collectors have listed the cluster.
func (c *Cluster) printTable(ctx context.Context) {
	for _, v := range []*dashboard.Collector{c.ningView, c.defaultView} {
		if err := v.WaitSynced(ctx); err != nil {
			return // the demo is ending
		}
	}
	c.tableMu.Lock()
	defer c.tableMu.Unlock()
	if err := writeTable(c.o.Out, c.ningView.Snapshot(), c.defaultView.Snapshot()); err != nil && ctx.Err() == nil {
		c.o.Log.Warn("live table", "err", err)
	}
}

// writeTable prints, from the dashboard's snapshots of ning's pods and of
// the default scheduler's, the sites with the measured RTT from the busiest
// site, their traffic, the replicas per site of both workloads with their
// weighted mean RTT, and ning's last decision.
func writeTable(w io.Writer, ning, def dashboard.Snapshot) error {
	mine, theirs := workload(ning, Workload), workload(def, DefaultWorkload)
	from := -1
	for i := range ning.Sites {
		if ning.Sites[i].Name == ning.Busiest {
			from = i
		}
	}
	// A tabwriter buffers until Flush, which reports any write error.
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintf(tw, "%s\tRTT from %s\treq/s\t%s\t%s\t\n", "site", ning.Busiest, Workload, DefaultWorkload)
	for j, st := range ning.Sites {
		rtt := "?"
		if from >= 0 && ning.RTTMs[from][j] != nil {
			rtt = fmt.Sprintf("%.1fms", *ning.RTTMs[from][j])
		}
		if j == from {
			rtt = "-"
		}
		rps := 0.0
		if st.TrafficRPS != nil {
			rps = *st.TrafficRPS
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t\n", st.Name, rtt, rps, bar(mine.Replicas[st.Name]), bar(theirs.Replicas[st.Name]))
	}
	_, _ = fmt.Fprintf(tw, "weighted RTT\t\t\t%s\t%s\t\n", msOrUnknown(mine.WeightedRTTMs), msOrUnknown(theirs.WeightedRTTMs))
	if err := tw.Flush(); err != nil {
		return err
	}
	d := mine.LastDecision
	if d == nil && len(ning.Decisions) > 0 {
		d = &ning.Decisions[0]
	}
	if d != nil {
		if _, err := fmt.Fprintf(w, "last decision: %s %s: %s\n", d.Reason, d.Name, d.Message); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w)
	return err
}

// workload is the snapshot's workload of the demo's Deployment name; an
// empty one before its pods exist.
func workload(s dashboard.Snapshot, deployment string) dashboard.Workload {
	for _, w := range s.Workloads {
		if w.Key() == Namespace+"/"+deployment {
			return w
		}
	}
	return dashboard.Workload{Replicas: map[string]int{}}
}

func msOrUnknown(v *float64) string {
	if v == nil {
		return "?"
	}
	return fmt.Sprintf("%.2fms", *v)
}

func bar(n int) string {
	if n == 0 {
		return "."
	}
	return strings.Repeat("#", n)
}

// Print writes the summary for a person.
func (s *Summary) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintf(tw, "\nning demo summary: %s, %d replicas, %.0f req/s per replica\n", s.Topology, s.Replicas, s.PerReplicaRPS)
	_, _ = fmt.Fprintf(tw, "weighted mean RTT\tbefore the shift\tafter the shift\t\n")
	row := func(name string, a, b float64, pa, pb map[string]int) {
		_, _ = fmt.Fprintf(tw, "%s\t%.2f ms\t%.2f ms\t  %s -> %s\n", name, a, b, compact(pa), compact(pb))
	}
	row("ning", s.Before.NingMs, s.After.NingMs, s.Before.Ning, s.After.Ning)
	row("default kube-scheduler", s.Before.DefaultMs, s.After.DefaultMs, s.Before.Default, s.After.Default)
	row("exact optimum", s.Before.OptimumMs, s.After.OptimumMs, s.Before.Optimum, s.After.Optimum)
	if err := tw.Flush(); err != nil {
		return err
	}
	conv := fmt.Sprintf("%.1f s (%.0f evictions)", s.ConvergeSec, s.Evictions)
	if !s.Converged {
		conv = "did not settle in time"
	}
	rec := fmt.Sprintf("%.1f s (node down after %.0f s; Kubernetes' default toleration is 300 s)", s.RecoverSec, s.NodeDownAfter)
	if !s.Recovered {
		rec = "not recovered in time"
	}
	if _, err := fmt.Fprintf(w, "traffic shift %s -> %s: converged in %s\nnode %s lost: recovered in %s\n",
		s.ShiftFrom, s.ShiftTo, conv, s.LostNode, rec); err != nil {
		return err
	}
	if p := s.Probes; p != nil {
		if _, err := fmt.Fprintf(w, "measured RTT (%s probers) vs topology: %d pairs, mean %+.2f ms, mean |diff| %.2f ms, worst %s %.2f ms for %.0f ms\n",
			p.Probers, p.Pairs, p.MeanDiffMs, p.MeanAbsDiffMs, p.Worst, p.WorstMeasuredMs, p.WorstTopologyMs); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "total %.0f s\n", s.TotalSec)
	return err
}

// compact writes a placement as site=n in site order.
func compact(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v > 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
