package explain

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ning-edge/ning/internal/plugins/cloudfallback"
	"github.com/ning-edge/ning/internal/plugins/nodeload"
	"github.com/ning-edge/ning/internal/plugins/trafficlatency"
	"github.com/ning-edge/ning/internal/policy"
)

// WriteTable prints an explanation for a person.
func WriteTable(w io.Writer, e *Explanation) error {
	var b strings.Builder
	head(&b, e)
	b.WriteString("\n")
	if err := columns(&b, siteRows(e)); err != nil {
		return err
	}
	if len(e.Sites) == 0 {
		b.WriteString("(no sites: the cluster has no nodes)\n")
	}
	if e.RawNote != "" && e.TrafficRPS > 0 {
		fmt.Fprintf(&b, "* %s\n", e.RawNote)
	}
	b.WriteString("\n")
	if err := columns(&b, nodeRows(e)); err != nil {
		return err
	}
	if rows := defaultRows(e); len(rows) > 1 {
		b.WriteString("\nkube-scheduler's default score plugins (normalised, x weight):\n")
		if err := columns(&b, rows); err != nil {
			return err
		}
	}
	b.WriteString("\n")
	rows := [][]string{{"PLACEMENT", "REPLICAS PER SITE", "WEIGHTED RTT"}, placementRow("actual", e.Actual)}
	if e.PlanError == "" {
		rows = append(rows, placementRow("planned", e.Planned))
	}
	if err := columns(&b, rows); err != nil {
		return err
	}
	if e.PlanError != "" {
		fmt.Fprintf(&b, "planned: %s\n", e.PlanError)
	}
	b.WriteString("\n")
	choices(&b, e)
	fmt.Fprintf(&b, "default plugins: %s\n", e.Default)
	if e.Pod != nil && len(e.Pod.Decisions) > 0 {
		b.WriteString("decisions:\n")
		for _, d := range e.Pod.Decisions {
			fmt.Fprintf(&b, "  %s %s: %s\n", ago(e.Time, d.Time), d.Reason, d.Message)
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing the explanation: %w", err)
	}
	return nil
}

func head(b *strings.Builder, e *Explanation) {
	wl := e.Workload
	switch {
	case e.Pod != nil && e.Pod.Node != "":
		fmt.Fprintf(b, "pod %s/%s: on node %s in site %s\n", e.Namespace, e.Pod.Name, e.Pod.Node, e.Pod.Site)
	case e.Pod != nil:
		fmt.Fprintf(b, "pod %s/%s: pending: %s\n", e.Namespace, e.Pod.Name, e.Pod.Pending)
	default:
		fmt.Fprintf(b, "deployment %s/%s: its next replica\n", e.Namespace, e.Name)
	}
	name := fmt.Sprintf("%s %s/%s", wl.Kind, e.Namespace, wl.Name)
	if wl.Deployment != "" {
		name = fmt.Sprintf("Deployment %s/%s (ReplicaSet %s)", e.Namespace, wl.Deployment, wl.Name)
	}
	fmt.Fprintf(b, "workload: %s, %d pods, %d pending\n", name, wl.Replicas, wl.Pending)
	fmt.Fprintf(b, "data: RTT updated %s, traffic %s, load %s; traffic %s req/s in all\n",
		ago(e.Time, e.Updates.RTT), ago(e.Time, e.Updates.Traffic), ago(e.Time, e.Updates.Load), rate(e.TrafficRPS))
	switch {
	case e.ConstraintError != "":
		fmt.Fprintf(b, "delay constraints: %s\n", e.ConstraintError)
	case len(e.Constraints) == 0:
		b.WriteString("delay constraints: none (no delay_<from> label)\n")
	default:
		var cs []string
		for _, c := range e.Constraints {
			from := c.From
			if c.FromSite != c.From {
				from = fmt.Sprintf("%s, site %s", c.From, c.FromSite)
			}
			cs = append(cs, fmt.Sprintf("%s: at most %s ms from %s", c.Label, strconv.FormatFloat(c.MaxMs, 'f', -1, 64), from))
		}
		fmt.Fprintf(b, "delay constraints (unknown RTTs %s): %s\n", e.UnknownRTT, strings.Join(cs, "; "))
	}
	switch {
	case e.LimitError != "":
		fmt.Fprintf(b, "site limits: %s\n", e.LimitError)
	case e.Limits != "":
		fmt.Fprintf(b, "site limits: %s\n", e.Limits)
	}
	if e.FailedOpen {
		b.WriteString("no site meets them with measured RTTs, none breaks them: they fail open for the sites with unknown RTTs\n")
	}
}

func siteRows(e *Explanation) [][]string {
	head := []string{"SITE", "NODES", "TRAFFIC", "REPLICAS", "DELAY"}
	if len(e.Sites) > 0 {
		for _, r := range e.Sites[0].RTTs {
			head = append(head, "RTT FROM "+r.FromSite)
		}
	}
	head = append(head, "USABLE", "TL RAW", "TL SCORE", "ONE MORE REPLICA THERE", "REASON")
	rows := [][]string{head}
	for _, st := range e.Sites {
		delay := "ok"
		if !st.OK {
			delay = "no"
		}
		traffic := "-"
		if st.TrafficRPS != nil {
			traffic = rate(*st.TrafficRPS) + " req/s"
		}
		nodes := fmt.Sprintf("%d/%d", st.Schedulable, st.Nodes)
		if st.Cloud {
			nodes += " cloud"
		}
		row := []string{st.Name, nodes, traffic, fmt.Sprint(st.Replicas), delay}
		for _, r := range st.RTTs {
			row = append(row, rttCell(e.Time, r))
		}
		usable := "no"
		if st.Usable {
			usable = "yes"
		}
		raw, norm, gain := "-", "-", "-"
		if e.TrafficRPS > 0 {
			raw, gain = "not shown*", st.Gain
			if st.Raw != nil {
				raw = fmt.Sprint(*st.Raw)
			}
		}
		if st.Normalised != nil {
			norm = fmt.Sprint(*st.Normalised)
		}
		reason := st.Reason
		if reason == "" {
			reason = "-"
		}
		rows = append(rows, append(row, usable, raw, norm, gain, reason))
	}
	return rows
}

// rttCell is an RTT and its age: "34.00 ms, 10s old", "8.00 ms, static",
// "unknown (stale, measured 12m0s ago)", "unknown (never measured)".
func rttCell(now time.Time, r RTT) string {
	switch {
	case r.Ms != nil && r.Static:
		return policy.FormatMS(*r.Ms, true) + ", static"
	case r.Ms != nil:
		return fmt.Sprintf("%s, %s old", policy.FormatMS(*r.Ms, true), since(now, *r.Measured))
	case r.Measured != nil:
		return fmt.Sprintf("unknown (stale, measured %s)", ago(now, *r.Measured))
	}
	return "unknown (never measured)"
}

func nodeRows(e *Explanation) [][]string {
	w := e.Weights
	rows := [][]string{{"NODE", "SITE", "CPU", "REPLICAS",
		fmt.Sprintf("%s x%d", trafficlatency.Name, w.TrafficLatency),
		fmt.Sprintf("%s x%d", nodeload.Name, w.NodeLoad),
		fmt.Sprintf("%s x%d", cloudfallback.Name, w.CloudFallback),
		"DEFAULT PLUGINS", "TOTAL", "FILTER"}}
	for _, nd := range e.Nodes {
		cpu := "-"
		if nd.CPU != nil {
			cpu = fmt.Sprintf("%.0f%%", 100**nd.CPU)
		}
		row := []string{nd.Name, nd.Site, cpu, fmt.Sprint(nd.Replicas)}
		for _, plugin := range []string{trafficlatency.Name, nodeload.Name, cloudfallback.Name} {
			cell := "-"
			for _, s := range nd.Scores {
				if s.Plugin != plugin {
					continue
				}
				switch plugin {
				case nodeload.Name:
					cell = fmt.Sprint(s.Normalised)
					if s.Raw != nil {
						cell = fmt.Sprintf("%d (%.2f)", s.Normalised, *s.Raw)
					}
				default:
					cell = fmt.Sprint(s.Normalised)
				}
			}
			row = append(row, cell)
		}
		def, hasDef := int64(0), false
		for _, s := range nd.Scores {
			if s.Default {
				def, hasDef = def+s.Normalised*int64(s.Weight), true
			}
		}
		if hasDef {
			row = append(row, fmt.Sprint(def))
		} else {
			row = append(row, "-")
		}
		total, filter := "-", "passes"
		if nd.Filter != "" {
			filter = "fails: " + nd.Filter
		} else {
			total = fmt.Sprint(nd.Total)
		}
		rows = append(rows, append(row, total, filter))
	}
	return rows
}

// defaultRows are the candidates' default plugin scores, one column each.
func defaultRows(e *Explanation) [][]string {
	var plugins []string
	weight := map[string]int32{}
	for _, nd := range e.Nodes {
		for _, s := range nd.Scores {
			if _, ok := weight[s.Plugin]; s.Default && !ok {
				weight[s.Plugin] = s.Weight
				plugins = append(plugins, s.Plugin)
			}
		}
	}
	sort.Strings(plugins)
	head := []string{"NODE"}
	for _, p := range plugins {
		head = append(head, fmt.Sprintf("%s x%d", p, weight[p]))
	}
	rows := [][]string{head}
	for _, nd := range e.Nodes {
		if nd.Filter != "" {
			continue
		}
		row := []string{nd.Name}
		for _, p := range plugins {
			cell := "-"
			for _, s := range nd.Scores {
				if s.Plugin == p {
					cell = fmt.Sprint(s.Normalised)
				}
			}
			row = append(row, cell)
		}
		rows = append(rows, row)
	}
	if len(plugins) == 0 {
		return nil
	}
	return rows
}

func placementRow(name string, p Placement) []string {
	sites := make([]string, 0, len(p.Replicas))
	for s := range p.Replicas {
		sites = append(sites, s)
	}
	sort.Strings(sites)
	var parts []string
	for _, s := range sites {
		parts = append(parts, fmt.Sprintf("%s=%d", s, p.Replicas[s]))
	}
	reps := strings.Join(parts, " ")
	if reps == "" {
		reps = "none"
	}
	rtt := "unknown"
	if p.WeightedRTTMs != nil {
		rtt = policy.FormatMS(*p.WeightedRTTMs, true)
	}
	return []string{name, reps, rtt}
}

func choices(b *strings.Builder, e *Explanation) {
	label := "next replica"
	if e.Pod != nil && e.Pod.Node != "" {
		label = "placed"
	} else if e.Pod != nil {
		label = "would go to"
	}
	if e.Choice == nil {
		fmt.Fprintf(b, "%s: no site: no node passes ning's filters\n", label)
		return
	}
	c := e.Choice
	fmt.Fprintf(b, "%s: site %s (node %s, total %d): %s\n", label, c.Site, c.Node, c.Total, c.Why)
	if c.Gain != "" {
		fmt.Fprintf(b, "  one more replica there: %s\n", c.Gain)
	}
	if r := e.RunnerUp; r != nil {
		fmt.Fprintf(b, "runner-up: site %s (node %s, total %d) lost: %s\n", r.Site, r.Node, r.Total, r.Why)
		if r.Gain != "" {
			fmt.Fprintf(b, "  one more replica there: %s\n", r.Gain)
		}
	} else {
		b.WriteString("runner-up: none: no other site has a node that passes ning's filters\n")
	}
}

func rate(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// ago is how long before now t was: "10s ago", "never" for the zero time.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return since(now, t) + " ago"
}

func since(now, t time.Time) string {
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String()
}

// columns writes rows as aligned columns.
func columns(b *strings.Builder, rows [][]string) error {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		if _, err := fmt.Fprintln(tw, strings.Join(r, "\t")); err != nil {
			return err
		}
	}
	return tw.Flush()
}
