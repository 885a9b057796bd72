package dashboard

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// page is what the HTML template renders: the snapshot, already laid out.
type page struct {
	Time      string
	Synced    bool
	Error     string
	Busiest   string
	RTTAge    string
	TraffAge  string
	Sites     []siteRow
	Heat      heatmap
	Chart     chart
	Topology  topoView
	Zones     []zoneLayer
	Compare   *compareView
	Measured  *measuredView
	Workloads []workloadRow
	// Explains is whether workloads link to their explain page.
	Explains  bool
	Decisions []decisionRow
}

type siteRow struct {
	Name       string
	Nodes      string
	Traffic    string
	BarWidth   float64 // px of trafficBarPx
	Replicas   int
	Colour     string
	HasTraffic bool
}

type heatmap struct {
	Sites []string
	Rows  []heatRow
	Min   string
	Max   string
}

type heatRow struct {
	From  string
	Cells []heatCell
}

type heatCell struct {
	To, Text, Colour, Title string
	Known                   bool
}

type chart struct {
	Width, Height     int
	Left, Right       int // plot area in px
	Top, Bottom       int
	MaxY              int
	First, Last       string
	Layers            []layer
	Samples           int
	YTicks            []tick
	NotEnoughHistory  bool
	PlotWidth, PlotHt int
}

// layer is one site's band of the stacked chart: its replicas stacked on
// the sites before it, so four sites at one replica each are four bands.
type layer struct {
	Site, Colour, Points string
	Now                  int
}

type tick struct {
	Y     float64
	Label string
}

type workloadRow struct {
	Key, Kind, Placement, Pending, WeightedRTT, LastDecision string
	// ExplainPath is the workload's explain page, relative to the root;
	// "" for a kind explain does not take.
	ExplainPath string
	Total       int
}

type decisionRow struct {
	Time, Ago, Reason, Type, Object, Message string
	Count                                    int32
}

const trafficBarPx = 160

// palette colours sites in the chart and the traffic bars, by site index.
var palette = [...]string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}

func newPage(s Snapshot) page {
	p := page{
		Time: s.Time.UTC().Format(time.RFC3339), Synced: s.Synced, Error: s.Error, Busiest: s.Busiest,
		RTTAge: age(s.Time, s.Updates.RTT), TraffAge: age(s.Time, s.Updates.Traffic),
	}
	colour := map[string]string{}
	maxTraffic := 0.0
	for i, st := range s.Sites {
		colour[st.Name] = palette[i%len(palette)]
		if st.TrafficRPS != nil {
			maxTraffic = math.Max(maxTraffic, *st.TrafficRPS)
		}
	}
	for _, st := range s.Sites {
		r := siteRow{Name: st.Name, Nodes: fmt.Sprintf("%d/%d", st.Ready, st.Nodes), Traffic: "unknown",
			Replicas: st.Replicas, Colour: colour[st.Name]}
		if st.TrafficRPS != nil {
			r.HasTraffic = true
			r.Traffic = fmt.Sprintf("%.1f req/s", *st.TrafficRPS)
			if maxTraffic > 0 {
				r.BarWidth = math.Round(trafficBarPx * *st.TrafficRPS / maxTraffic)
			}
		}
		p.Sites = append(p.Sites, r)
	}
	p.Heat = newHeatmap(s)
	p.Chart = newChart(s.History, s.Sites, colour)
	p.Topology = newTopoView(s, colour)
	p.Zones = newZones(s.DelayZones, colour)
	p.Compare = newCompareView(s)
	p.Measured = newMeasuredView(s.Measured)
	for i := range s.Workloads {
		w := &s.Workloads[i]
		r := workloadRow{Key: w.Key(), Kind: w.Kind, Total: w.Total(), Pending: fmt.Sprint(w.Pending), WeightedRTT: weightedMS(w.WeightedRTTMs)}
		switch {
		case w.Deployment != "":
			r.Kind = "Deployment"
			r.ExplainPath = "explain/deployment/" + w.Namespace + "/" + w.Deployment
		case w.Kind == "Pod":
			r.ExplainPath = "explain/pod/" + w.Namespace + "/" + w.Name
		}
		var parts []string
		for _, st := range s.Sites {
			if n := w.Replicas[st.Name]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s: %d", st.Name, n))
			}
		}
		r.Placement = strings.Join(parts, ", ")
		if d := w.LastDecision; d != nil {
			r.LastDecision = fmt.Sprintf("%s %s: %s", d.Reason, age(s.Time, d.Time), oneLine(d.Message))
		}
		p.Workloads = append(p.Workloads, r)
	}
	for _, d := range s.Decisions {
		p.Decisions = append(p.Decisions, decisionRow{
			Time: d.Time.UTC().Format("15:04:05"), Ago: age(s.Time, d.Time), Reason: d.Reason, Type: d.Type,
			Object: d.Namespace + "/" + d.Name, Message: d.Message, Count: d.Count,
		})
	}
	return p
}

// newHeatmap colours each known RTT from green (the lowest between two
// different sites) to red (the highest) on a logarithmic scale; unknown is
// grey and says so.
func newHeatmap(s Snapshot) heatmap {
	h := heatmap{}
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, row := range s.RTTMs {
		for j, v := range row {
			if v != nil && i != j {
				lo, hi = math.Min(lo, *v), math.Max(hi, *v)
			}
		}
	}
	if !math.IsInf(lo, 1) {
		h.Min, h.Max = fmt.Sprintf("%.1f ms", lo), fmt.Sprintf("%.1f ms", hi)
	}
	for _, st := range s.Sites {
		h.Sites = append(h.Sites, st.Name)
	}
	for i, st := range s.Sites {
		r := heatRow{From: st.Name}
		for j, to := range s.Sites {
			c := heatCell{To: to.Name, Text: "?", Colour: "#d0d0d0", Title: st.Name + " → " + to.Name + ": unknown"}
			if v := s.RTTMs[i][j]; v != nil {
				c.Known = true
				c.Text = fmt.Sprintf("%.1f", *v)
				c.Title = fmt.Sprintf("%s → %s: %.2f ms", st.Name, to.Name, *v)
				c.Colour = heatColour(*v, lo, hi)
			}
			r.Cells = append(r.Cells, c)
		}
		h.Rows = append(h.Rows, r)
	}
	return h
}

// heatColour maps v in [lo, hi] (log scale) to a hue from green to red.
func heatColour(v, lo, hi float64) string {
	t := 0.0
	if hi > lo {
		t = (math.Log1p(v) - math.Log1p(lo)) / (math.Log1p(hi) - math.Log1p(lo))
	}
	t = math.Max(0, math.Min(1, t))
	return hslHex(120*(1-t), 0.6, 0.7)
}

// hslHex converts a colour with a hue h in [0, 120] (red to green) to
// #rrggbb: html/template accepts that in a style attribute, where it would
// reject "hsl(...)".
func hslHex(h, s, l float64) string {
	c := (1 - math.Abs(2*l-1)) * s
	x := c * (1 - math.Abs(math.Mod(h/60, 2)-1))
	m := l - c/2
	r, g := x, c
	if h < 60 {
		r, g = c, x
	}
	to := func(v float64) int { return int(math.Round((v + m) * 255)) }
	return fmt.Sprintf("#%02x%02x%02x", to(r), to(g), to(0))
}

// newChart draws the replicas per site over time as a stacked area chart:
// one band per site (sorted by name, the first at the bottom), each as thick
// as the site's replicas, so the top edge is the total.
func newChart(history []Sample, sites []Site, colour map[string]string) chart {
	c := chart{Width: 720, Height: 240, Left: 40, Right: 700, Top: 12, Bottom: 210, Samples: len(history)}
	c.PlotWidth, c.PlotHt = c.Right-c.Left, c.Bottom-c.Top
	if len(history) < 2 {
		c.NotEnoughHistory = true
		return c
	}
	first, last := history[0].Time, history[len(history)-1].Time
	c.First, c.Last = first.UTC().Format("15:04:05"), last.UTC().Format("15:04:05")
	span := last.Sub(first).Seconds()
	seen := map[string]bool{}
	for _, smp := range history {
		total := 0
		for site, n := range smp.Replicas {
			seen[site] = true
			total += n
		}
		c.MaxY = max(c.MaxY, total)
	}
	for _, st := range sites {
		if st.Replicas > 0 {
			seen[st.Name] = true
		}
	}
	if c.MaxY < 1 {
		c.MaxY = 1
	}
	x := func(t time.Time) float64 {
		if span <= 0 {
			return float64(c.Left)
		}
		return float64(c.Left) + t.Sub(first).Seconds()/span*float64(c.PlotWidth)
	}
	y := func(n int) float64 { return float64(c.Bottom) - float64(n)/float64(c.MaxY)*float64(c.PlotHt) }
	for _, v := range []int{0, (c.MaxY + 1) / 2, c.MaxY} {
		if len(c.YTicks) > 0 && c.YTicks[len(c.YTicks)-1].Label == fmt.Sprint(v) {
			continue
		}
		c.YTicks = append(c.YTicks, tick{Y: y(v), Label: fmt.Sprint(v)})
	}
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	sort.Strings(names)
	below := make([]int, len(history)) // replicas of the bands drawn so far
	for _, name := range names {
		top := make([]string, 0, len(history))
		bottom := make([]string, 0, len(history))
		for k, smp := range history {
			bottom = append(bottom, fmt.Sprintf("%.1f,%.1f", x(smp.Time), y(below[k])))
			below[k] += smp.Replicas[name]
			top = append(top, fmt.Sprintf("%.1f,%.1f", x(smp.Time), y(below[k])))
		}
		// The band's outline: along its top left to right, back along its bottom.
		slices.Reverse(bottom)
		col := colour[name]
		if col == "" {
			col = "#000000"
		}
		c.Layers = append(c.Layers, layer{Site: name, Colour: col, Points: strings.Join(append(top, bottom...), " "),
			Now: history[len(history)-1].Replicas[name]})
	}
	return c
}

// compareView draws a Comparison as bars of weighted mean RTT.
type compareView struct {
	Workload, Basis string
	Rows            []compareRow
}

type compareRow struct {
	Name, RTT, VsOptimum, Placement, Colour string
	BarWidth                                float64
	Known                                   bool
}

const compareBarPx = 320

func newCompareView(s Snapshot) *compareView {
	c := s.Comparison
	if c == nil {
		return nil
	}
	v := &compareView{Workload: c.Workload, Basis: c.Basis}
	worst, optimum := 0.0, math.NaN()
	for _, r := range c.Rows {
		if r.WeightedRTTMs != nil {
			worst = math.Max(worst, *r.WeightedRTTMs)
			if r.Name == CompareOptimum {
				optimum = *r.WeightedRTTMs
			}
		}
	}
	for _, r := range c.Rows {
		row := compareRow{Name: r.Name, RTT: weightedMS(r.WeightedRTTMs), Known: r.WeightedRTTMs != nil, Colour: "#999999"}
		switch r.Name {
		case CompareNing:
			row.Colour = "#1f77b4"
		case CompareOptimum:
			row.Colour = "#2ca02c"
		}
		if r.WeightedRTTMs != nil {
			ms := *r.WeightedRTTMs
			if worst > 0 {
				row.BarWidth = math.Round(compareBarPx * ms / worst)
			}
			if optimum > 0 && r.Name != CompareOptimum {
				row.VsOptimum = fmt.Sprintf("%+.0f %% vs the optimum", 100*(ms-optimum)/optimum)
			}
		}
		var parts []string
		for _, st := range s.Sites {
			if n := r.Placement[st.Name]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s: %d", st.Name, n))
			}
		}
		row.Placement = strings.Join(parts, ", ")
		v.Rows = append(v.Rows, row)
	}
	return v
}

// zoneLayer is one delay's zones: each a group of sites every two of which
// are within Delay of one another.
type zoneLayer struct {
	Delay string
	Zones []zone
}

type zone struct {
	Sites []zoneSite
	// Key is the sites' names joined by spaces (the DOM's data-sites).
	Key string
}

type zoneSite struct{ Name, Colour string }

// newZones lays out the snapshot's delay zones, smallest delay first, the
// largest zones first within one (as placement.Layers names them).
func newZones(zones map[string][][]string, colour map[string]string) []zoneLayer {
	var out []zoneLayer
	for _, d := range zoneKeys(zones) {
		l := zoneLayer{Delay: d}
		for _, z := range zones[d] {
			v := zone{Key: strings.Join(z, " ")}
			for _, name := range z {
				c := colour[name]
				if c == "" {
					c = "#d0d0d0"
				}
				v.Sites = append(v.Sites, zoneSite{Name: name, Colour: c})
			}
			l.Zones = append(l.Zones, v)
		}
		out = append(out, l)
	}
	return out
}

type measuredView struct {
	File, Routing, Scenario, Workload string
	Rows                              []measuredRow
}

type measuredRow struct {
	Name, P50, P95, P99, Model, Requests, Placement string
}

// newMeasuredView formats the lab's figures; nil without them.
func newMeasuredView(m *Measured) *measuredView {
	if m == nil {
		return nil
	}
	v := &measuredView{File: m.File, Routing: m.Routing, Scenario: m.Scenario, Workload: m.Workload}
	ms := func(x float64) string { return fmt.Sprintf("%.2f ms", x) }
	for _, r := range m.Rows {
		row := measuredRow{Name: r.Name, P50: ms(r.P50Ms), P95: ms(r.P95Ms), P99: ms(r.P99Ms),
			Model: weightedMS(r.ModelWeightedRTTMs), Requests: fmt.Sprintf("%d (%d failed)", r.Requests, r.Errors)}
		var parts []string
		for _, site := range slices.Sorted(maps.Keys(r.Placement)) {
			parts = append(parts, fmt.Sprintf("%s: %d", site, r.Placement[site]))
		}
		row.Placement = strings.Join(parts, ", ")
		v.Rows = append(v.Rows, row)
	}
	return v
}
