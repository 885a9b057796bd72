package bench

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot/plotter"

	"github.com/ning-edge/ning/internal/benchreport"
)

// Run is one scenario under one routing: every method's requests, and
// where each method's pods were when it began and ended.
type Run struct {
	Routing  string
	Scenario *Scenario
	Results  []Result
	// Before and After are each method's Ready pods per site.
	Before, After map[string]map[string]int
	// Model is ning's modelled weighted RTT (ms) of each method's
	// placement at the start, under the first phase's traffic.
	Model map[string]float64
}

// MethodResult is one method's figures in one run.
type MethodResult struct {
	Summary
	ModelWeightedRTTms float64            `json:"modelWeightedRTTms"`
	Placement          map[string]int     `json:"placement"`
	PlacementAfter     map[string]int     `json:"placementAfter,omitempty"`
	PerSite            map[string]Summary `json:"perSite"`
	// SettleSeconds is the time from the shift until p95 settles
	// (SettleTime); -1: it did not within the run. Only with a shift.
	SettleSeconds *float64 `json:"settleSeconds,omitempty"`
	// EventErrors are the failed requests scheduled from the scenario's
	// first event (or shift) to its end: those lost in moves and failures.
	EventErrors *int `json:"eventErrors,omitempty"`
	// ErrorKinds counts errors by kind.
	ErrorKinds map[string]int `json:"errorKinds,omitempty"`
}

// Report is bench/lab.json.
type Report struct {
	Topology string `json:"topology"`
	Workload string `json:"workload"`
	// Routing -> scenario -> method.
	Routing map[string]map[string]map[string]*MethodResult `json:"routing"`
	// Discovery is the first TrafficReport discovery published from
	// Prometheus; OTLP what `ning discover --source otlp` decided.
	Discovery json.RawMessage `json:"discovery,omitempty"`
	OTLP      json.RawMessage `json:"otlp,omitempty"`
	// QueueFloor is QueueFloor for the steady scenario's traffic: the
	// response times no placement can beat with this workload.
	QueueFloor *Floor `json:"queueFloor,omitempty"`
	runs       []*Run
	siteNode   map[string]string
}

// Floor is the queues' own p50 and p95 (ms) at the steady traffic, spread
// evenly over the replicas.
type Floor struct {
	RequestsPerSecond float64 `json:"requestsPerSecond"`
	P50Ms             float64 `json:"p50Ms"`
	P95Ms             float64 `json:"p95Ms"`
}

// NewReport summarises runs; siteNode maps a site to its node.
func NewReport(topology, workload string, runs []*Run, siteNode map[string]string) *Report {
	r := &Report{Topology: topology, Workload: workload, Routing: map[string]map[string]map[string]*MethodResult{}, runs: runs, siteNode: siteNode}
	for _, run := range runs {
		by := map[string][]Result{}
		for _, res := range run.Results {
			if res.At >= 0 {
				by[res.Target] = append(by[res.Target], res)
			}
		}
		if r.Routing[run.Routing] == nil {
			r.Routing[run.Routing] = map[string]map[string]*MethodResult{}
		}
		ms := map[string]*MethodResult{}
		r.Routing[run.Routing][run.Scenario.Name] = ms
		from := eventStart(run.Scenario)
		for _, m := range Methods {
			rs := by[m]
			mr := &MethodResult{Summary: Summarise(rs, siteNode), ModelWeightedRTTms: round2(run.Model[m]),
				Placement: run.Before[m], PerSite: map[string]Summary{}, ErrorKinds: map[string]int{}}
			if !maps.Equal(run.Before[m], run.After[m]) {
				mr.PlacementAfter = run.After[m]
			}
			site := map[string][]Result{}
			for _, x := range rs {
				site[x.Site] = append(site[x.Site], x)
				if x.Err != "" {
					mr.ErrorKinds[x.Err]++
				}
			}
			for s, xs := range site {
				mr.PerSite[s] = Summarise(xs, siteNode)
			}
			if from >= 0 {
				n := 0
				for _, x := range rs {
					if x.Err != "" && x.At >= from {
						n++
					}
				}
				mr.EventErrors = &n
			}
			if sh := run.Scenario.Shift(); sh > 0 && len(run.Scenario.Events) == 0 {
				st := SettleTime(Windows(rs, 5, run.Scenario.Duration.Seconds()), sh.Seconds())
				mr.SettleSeconds = &st
			}
			ms[m] = mr
		}
	}
	return r
}

// eventStart is the first event's time, else the shift's, else -1.
func eventStart(s *Scenario) float64 {
	if len(s.Events) > 0 {
		return s.Events[0].At.Seconds()
	}
	if sh := s.Shift(); sh > 0 {
		return sh.Seconds()
	}
	return -1
}

// Best is the routing with the lower overall p95 for method in scenario.
func (r *Report) Best(scenario, method string) (string, *MethodResult) {
	best, bestR := "", (*MethodResult)(nil)
	for _, routing := range Routings {
		mr := r.Routing[routing][scenario][method]
		if mr == nil || mr.Requests == 0 {
			continue
		}
		if bestR == nil || mr.P95Ms < bestR.P95Ms {
			best, bestR = routing, mr
		}
	}
	return best, bestR
}

// Write writes lab.json, lab.md and the plots into dir.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "lab.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	var plots []string
	for _, run := range r.runs {
		by := map[string][]Result{}
		for _, res := range run.Results {
			if res.At >= 0 {
				by[res.Target] = append(by[res.Target], res)
			}
		}
		name := fmt.Sprintf("lab-%s-%s", run.Scenario.Name, run.Routing)
		cdf := benchreport.Lines{Title: fmt.Sprintf("Response time CDF, %s, %s routing", run.Scenario.Name, run.Routing),
			X: "response time (ms, log)", Y: "share of requests within (%)", LogX: true}
		p95 := benchreport.Lines{Title: fmt.Sprintf("p95 over time (5 s windows), %s, %s routing", run.Scenario.Name, run.Routing),
			X: "seconds", Y: "p95 response time (ms)"}
		for _, m := range Methods {
			cdf.Names, p95.Names = append(cdf.Names, m), append(p95.Names, m)
			cdf.Series = append(cdf.Series, cdfPoints(by[m]))
			var pts plotter.XYs
			for _, w := range Windows(by[m], 5, run.Scenario.Duration.Seconds()) {
				if !math.IsNaN(w.P95Ms) {
					pts = append(pts, plotter.XY{X: w.Start + 2.5, Y: w.P95Ms})
				}
			}
			p95.Series = append(p95.Series, pts)
		}
		if err := cdf.Save(filepath.Join(dir, name+"-cdf.svg")); err != nil {
			return err
		}
		plots = append(plots, name+"-cdf.svg")
		if run.Scenario.Shift() > 0 || len(run.Scenario.Events) > 0 {
			if err := p95.Save(filepath.Join(dir, name+"-p95.svg")); err != nil {
				return err
			}
			plots = append(plots, name+"-p95.svg")
		}
	}
	return os.WriteFile(filepath.Join(dir, "lab.md"), []byte(r.Markdown(plots)), 0o644)
}

func cdfPoints(rs []Result) plotter.XYs {
	var ms []float64
	for _, x := range rs {
		if x.Err == "" {
			ms = append(ms, max(x.Ms, 0.1))
		}
	}
	sort.Float64s(ms)
	pts := make(plotter.XYs, 0, 200)
	step := max(1, len(ms)/200)
	for i := 0; i < len(ms); i += step {
		pts = append(pts, plotter.XY{X: ms[i], Y: 100 * float64(i+1) / float64(len(ms))})
	}
	if len(ms) > 0 {
		pts = append(pts, plotter.XY{X: ms[len(ms)-1], Y: 100})
	}
	return pts
}

func placementString(p map[string]int) string {
	var ks []string
	for k, v := range p {
		if v > 0 {
			ks = append(ks, fmt.Sprintf("%s %d", k, v))
		}
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// Markdown is lab.md's measured part (the harness adds the prose).
func (r *Report) Markdown(plots []string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("## Headline: steady scenario, the better routing per method\n\n")
	if _, d := r.Best("steady", "default"); d != nil {
		rn, n := r.Best("steady", "ning")
		ro, o := r.Best("steady", "optimal")
		rd, _ := r.Best("steady", "default")
		w("| method | routing | p50 ms | p95 ms | p99 ms | errors |\n|---|---|---|---|---|---|\n")
		for _, x := range []struct {
			m, r string
			s    *MethodResult
		}{{"ning", rn, n}, {"default", rd, d}, {"optimal", ro, o}} {
			if x.s != nil {
				w("| %s | %s | %.1f | %.1f | %.1f | %d / %d |\n", x.m, x.r, x.s.P50Ms, x.s.P95Ms, x.s.P99Ms, x.s.Errors, x.s.Requests)
			}
		}
		if n != nil && d.P95Ms > 0 {
			w("\nning's p95 is **%.1f %%** below the default scheduler's (target: at least 40 %%).\n", 100*(1-n.P95Ms/d.P95Ms))
		}
		if f := r.QueueFloor; f != nil && d.P95Ms > 0 {
			w("\nThe queues' floor: %.0f requests/s spread evenly over the replicas, with no network and no gateway, give a p95 of %.1f ms (p50 %.1f; QueueFloor, an M/D/c simulation). "+
				"No placement and no routing can go below it; 40 %% below the default's p95 would be %.1f ms.\n", f.RequestsPerSecond, f.P95Ms, f.P50Ms, 0.6*d.P95Ms)
		}
		w("\n")
	}
	scenarios := []string{"steady", "shift", "nodeloss"}
	for _, routing := range Routings {
		for _, sc := range scenarios {
			ms := r.Routing[routing][sc]
			if ms == nil {
				continue
			}
			w("## %s, %s routing\n\n", sc, routing)
			w("| method | pods per site (start) | p50 ms | p95 ms | p99 ms | mean ms | model weighted RTT ms | served locally | requests | errors | errors after the event | p95 settles after (s) |\n")
			w("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
			for _, m := range Methods {
				x := ms[m]
				if x == nil {
					continue
				}
				ev, st := "", ""
				if x.EventErrors != nil {
					ev = fmt.Sprint(*x.EventErrors)
				}
				if x.SettleSeconds != nil {
					st = fmt.Sprint(*x.SettleSeconds)
					if *x.SettleSeconds < 0 {
						st = "not settled"
					}
				}
				pl := placementString(x.Placement)
				if x.PlacementAfter != nil {
					pl += " → " + placementString(x.PlacementAfter)
				}
				w("| %s | %s | %.1f | %.1f | %.1f | %.1f | %.2f | %.0f %% | %d | %d | %s | %s |\n", m, pl, x.P50Ms, x.P95Ms, x.P99Ms, x.MeanMs,
					x.ModelWeightedRTTms, 100*x.LocalShare, x.Requests, x.Errors, ev, st)
			}
			w("\np95 per site (ms):\n\n| method |")
			sites := map[string]bool{}
			for _, x := range ms {
				for s := range x.PerSite {
					sites[s] = true
				}
			}
			var ss []string
			for s := range sites {
				ss = append(ss, s)
			}
			sort.Strings(ss)
			for _, s := range ss {
				w(" %s |", s)
			}
			w("\n|---|%s\n", strings.Repeat("---|", len(ss)))
			for _, m := range Methods {
				w("| %s |", m)
				for _, s := range ss {
					ps := ms[m].PerSite[s]
					w(" %.1f (p50 %.1f, p99 %.1f) |", ps.P95Ms, ps.P50Ms, ps.P99Ms)
				}
				w("\n")
			}
			w("\n")
			for _, p := range plots {
				if strings.HasPrefix(p, "lab-"+sc+"-"+routing+"-") {
					w("![%s](%s)\n", p, p)
				}
			}
			w("\n")
		}
	}
	return b.String()
}
