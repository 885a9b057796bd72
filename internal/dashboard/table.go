package dashboard

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/policy"
)

// WriteTable prints a snapshot as ning's status table: per site its nodes,
// the RTT from the busiest traffic site, its traffic and the replicas of each
// workload; then per workload its replicas, pending pods, traffic-weighted
// mean RTT and last decision. workload ("namespace/name") limits it to one
// workload; "" shows them all.
func WriteTable(w io.Writer, s Snapshot, workload string) error {
	s, err := s.Select(workload)
	if err != nil {
		return err
	}
	var b strings.Builder
	if s.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", s.Error)
	}
	if !s.Synced {
		b.WriteString("not synced: the cluster has not been listed yet\n")
	}
	fmt.Fprintf(&b, "data age: RTT %s, traffic %s\n", age(s.Time, s.Updates.RTT), age(s.Time, s.Updates.Traffic))
	rttHead := "RTT FROM BUSIEST"
	if s.Busiest != "" {
		rttHead = "RTT FROM " + s.Busiest
	}
	rows := [][]string{{"SITE", "NODES", rttHead, "TRAFFIC"}}
	for i := range s.Workloads {
		rows[0] = append(rows[0], s.Workloads[i].Key())
	}
	from := -1
	for i := range s.Sites {
		if s.Sites[i].Name == s.Busiest {
			from = i
		}
	}
	for j, st := range s.Sites {
		row := []string{st.Name, fmt.Sprintf("%d/%d", st.Ready, st.Nodes), "-", "-"}
		if from >= 0 {
			row[2] = ms(s.RTTMs[from][j])
		}
		if st.TrafficRPS != nil {
			row[3] = fmt.Sprintf("%.1f req/s", *st.TrafficRPS)
		}
		for i := range s.Workloads {
			row = append(row, fmt.Sprint(s.Workloads[i].Replicas[st.Name]))
		}
		rows = append(rows, row)
	}
	if err := columns(&b, rows); err != nil {
		return err
	}
	if len(s.Sites) == 0 {
		b.WriteString("(no sites: no nodes and no topology data)\n")
	}
	if s.Busiest == "" {
		b.WriteString("(no traffic data: no busiest site to measure RTT from)\n")
	}
	writeZones(&b, s.DelayZones)
	b.WriteString("\n")
	if len(s.Workloads) == 0 {
		b.WriteString("no ning-scheduled workloads\n")
	} else {
		rows = [][]string{{"WORKLOAD", "KIND", "REPLICAS", "PENDING", "WEIGHTED RTT"}}
		for i := range s.Workloads {
			wl := &s.Workloads[i]
			kind := wl.Kind
			if wl.Deployment != "" {
				kind = "Deployment"
			}
			rows = append(rows, []string{wl.Key(), kind, fmt.Sprint(wl.Total()), fmt.Sprint(wl.Pending), weightedMS(wl.WeightedRTTMs)})
		}
		if err := columns(&b, rows); err != nil {
			return err
		}
	}
	shown := false
	for i := range s.Workloads {
		wl := &s.Workloads[i]
		if d := wl.LastDecision; d != nil {
			fmt.Fprintf(&b, "last decision for %s: %s\n", wl.Key(), decisionLine(s.Time, d))
			shown = shown || len(s.Decisions) > 0 && *d == s.Decisions[0]
		}
	}
	if workload == "" && len(s.Decisions) > 0 && !shown {
		fmt.Fprintf(&b, "last decision: %s\n", decisionLine(s.Time, &s.Decisions[0]))
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing the table: %w", err)
	}
	return nil
}

// writeZones prints the delay zones, one line a delay, smallest first:
// "delay zones within 30ms: [a b] [c]".
func writeZones(b *strings.Builder, zones map[string][][]string) {
	for _, k := range zoneKeys(zones) {
		fmt.Fprintf(b, "delay zones within %s: %s\n", k, placement.FormatZones(zones[k]))
	}
}

// zoneKeys are the zones' keys ("30ms"), smallest delay first.
func zoneKeys(zones map[string][][]string) []string {
	keys := make([]string, 0, len(zones))
	for k := range zones {
		keys = append(keys, k)
	}
	delay := func(k string) float64 {
		d, err := placement.ParseDelayLayers(k)
		if err != nil || len(d) == 0 {
			return math.Inf(1)
		}
		return d[0]
	}
	sort.SliceStable(keys, func(i, j int) bool {
		if di, dj := delay(keys[i]), delay(keys[j]); di != dj {
			return di < dj
		}
		return keys[i] < keys[j]
	})
	return keys
}

// columns writes rows as aligned columns.
func columns(w io.Writer, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		if _, err := io.WriteString(tw, strings.Join(r, "\t")+"\n"); err != nil {
			return fmt.Errorf("writing the table: %w", err)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing the table: %w", err)
	}
	return nil
}

func decisionLine(now time.Time, d *Decision) string {
	return fmt.Sprintf("%s %s %s/%s: %s", age(now, d.Time), d.Reason, d.Namespace, d.Name, oneLine(d.Message))
}

// oneLine keeps a message on one line of the table.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func ms(v *float64) string {
	if v == nil {
		return "unknown"
	}
	return fmt.Sprintf("%.2f ms", *v)
}

// weightedMS writes a workload's weighted mean RTT as every ning output does
// (policy.FormatMS).
func weightedMS(v *float64) string {
	if v == nil {
		return policy.FormatMS(0, false)
	}
	return policy.FormatMS(*v, true)
}

// age says how long before now t was: "never" for the zero time.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	return d.Round(time.Second).String() + " ago"
}
