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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// liveTable prints the table every TableEvery until ctx ends.
func (c *Cluster) liveTable(ctx context.Context) {
	t := time.NewTicker(c.o.TableEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.printTable(ctx)
	}
}

func (c *Cluster) printTable(ctx context.Context) {
	c.tableMu.Lock()
	defer c.tableMu.Unlock()
	if err := plainTable(ctx, c.o.Out, c); err != nil && ctx.Err() == nil {
		c.o.Log.Warn("live table", "err", err)
	}
}

// plainTable prints sites, the measured RTT from the busiest site, traffic,
// replicas per site of both workloads, and ning's last decision.
func plainTable(ctx context.Context, w io.Writer, c *Cluster) error {
	ning, _, _, err := c.Placement(ctx, Workload)
	if err != nil {
		return err
	}
	def, _, _, err := c.Placement(ctx, DefaultWorkload)
	if err != nil {
		return err
	}
	traffic := c.Store.Traffic()
	busiest := ""
	for _, s := range c.Sites {
		if busiest == "" || traffic[s] > traffic[busiest] {
			busiest = s
		}
	}
	// A tabwriter buffers until Flush, which reports any write error.
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintf(tw, "%s\tRTT from %s\treq/s\t%s\t%s\t\n", "site", busiest, Workload, DefaultWorkload)
	for _, s := range c.Sites {
		rtt := "?"
		if ms, ok := c.Store.RTT(busiest, s); ok {
			rtt = fmt.Sprintf("%.1fms", ms)
		}
		if s == busiest {
			rtt = "-"
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t\n", s, rtt, traffic[s], bar(ning[s]), bar(def[s]))
	}
	_, _ = fmt.Fprintf(tw, "weighted RTT\t\t\t%.2fms\t%.2fms\t\n", c.Cost(ning), c.Cost(def))
	if err := tw.Flush(); err != nil {
		return err
	}
	if d := lastDecision(ctx, c); d != "" {
		if _, err := fmt.Fprintf(w, "last decision: %s\n", d); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintln(w)
	return err
}

func bar(n int) string {
	if n == 0 {
		return "."
	}
	return strings.Repeat("#", n)
}

// lastDecision is the newest Event from ning (reason Ning*) in the demo
// namespace.
func lastDecision(ctx context.Context, c *Cluster) string {
	list, err := c.Client.CoreV1().Events(Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return ""
	}
	var best string
	var at time.Time
	for _, e := range list.Items {
		if !strings.HasPrefix(e.Reason, "Ning") {
			continue
		}
		t := e.LastTimestamp.Time
		if t.IsZero() {
			t = e.EventTime.Time
		}
		if best == "" || t.After(at) {
			best, at = fmt.Sprintf("%s %s: %s", e.Reason, e.InvolvedObject.Name, e.Message), t
		}
	}
	return best
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
