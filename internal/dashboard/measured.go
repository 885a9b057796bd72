package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
)

// Measured is one routing and scenario of the lab benchmark's report
// (bench/lab.json: routing -> scenario -> method), shown beside the
// modelled comparison: each method's measured response times and the
// weighted RTT its placement was modelled at.
type Measured struct {
	// File is where it was read from; Routing and Scenario name the run.
	File     string `json:"file"`
	Routing  string `json:"routing"`
	Scenario string `json:"scenario"`
	// Workload is the lab's description of its workload.
	Workload string        `json:"workload,omitempty"`
	Rows     []MeasuredRow `json:"rows"`
}

// MeasuredRow is one method's figures: CompareNing, CompareDefault or
// CompareOptimum, from the lab's "ning", "default" and "optimal".
type MeasuredRow struct {
	Name     string  `json:"name"`
	P50Ms    float64 `json:"p50Ms"`
	P95Ms    float64 `json:"p95Ms"`
	P99Ms    float64 `json:"p99Ms"`
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	// ModelWeightedRTTMs is the weighted RTT of the method's placement in
	// the lab, as the planner models it; nil when the file has none.
	ModelWeightedRTTMs *float64       `json:"modelWeightedRttMs"`
	Placement          map[string]int `json:"placement,omitempty"`
}

// labMethods are the lab's method names, in the comparison's order, with
// the comparison's row names.
var labMethods = []struct{ lab, row string }{
	{"ning", CompareNing}, {"default", CompareDefault}, {"optimal", CompareOptimum},
}

// labMethod is what LoadMeasured reads of one method in bench/lab.json.
type labMethod struct {
	P50Ms              *float64       `json:"p50Ms"`
	P95Ms              *float64       `json:"p95Ms"`
	P99Ms              *float64       `json:"p99Ms"`
	Requests           int            `json:"requests"`
	Errors             int            `json:"errors"`
	ModelWeightedRTTms *float64       `json:"modelWeightedRTTms"`
	Placement          map[string]int `json:"placement"`
}

// LoadMeasured reads routing and scenario of the lab report at path. Every
// error names the file and what is wrong in it.
func LoadMeasured(path, routing, scenario string) (*Measured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the lab report: %w", err)
	}
	var report struct {
		Workload string                                      `json:"workload"`
		Routing  map[string]map[string]map[string]*labMethod `json:"routing"`
	}
	if err := json.Unmarshal(data, &report); err != nil {
		return nil, fmt.Errorf("lab report %s: not bench/lab.json: %w", path, err)
	}
	if len(report.Routing) == 0 {
		return nil, fmt.Errorf("lab report %s: no \"routing\" results (want routing -> scenario -> method, as bench/lab.json)", path)
	}
	scenarios, ok := report.Routing[routing]
	if !ok {
		return nil, fmt.Errorf("lab report %s: no routing %q; it has %s", path, routing, keys(report.Routing))
	}
	methods, ok := scenarios[scenario]
	if !ok {
		return nil, fmt.Errorf("lab report %s: routing %s has no scenario %q; it has %s", path, routing, scenario, keys(scenarios))
	}
	m := &Measured{File: path, Routing: routing, Scenario: scenario, Workload: report.Workload}
	var errs []error
	for _, lm := range labMethods {
		r := methods[lm.lab]
		if r == nil {
			errs = append(errs, fmt.Errorf("no method %q", lm.lab))
			continue
		}
		row := MeasuredRow{Name: lm.row, Requests: r.Requests, Errors: r.Errors, Placement: r.Placement, ModelWeightedRTTMs: r.ModelWeightedRTTms}
		for _, f := range []struct {
			name string
			v    *float64
			to   *float64
		}{{"p50Ms", r.P50Ms, &row.P50Ms}, {"p95Ms", r.P95Ms, &row.P95Ms}, {"p99Ms", r.P99Ms, &row.P99Ms}} {
			switch {
			case f.v == nil:
				errs = append(errs, fmt.Errorf("%s: no %s", lm.lab, f.name))
			case math.IsNaN(*f.v) || math.IsInf(*f.v, 0) || *f.v < 0:
				errs = append(errs, fmt.Errorf("%s: %s %v: want a finite number of 0 or more", lm.lab, f.name, *f.v))
			default:
				*f.to = *f.v
			}
		}
		if v := r.ModelWeightedRTTms; v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0) || *v < 0) {
			errs = append(errs, fmt.Errorf("%s: modelWeightedRTTms %v: want a finite number of 0 or more", lm.lab, *v))
		}
		m.Rows = append(m.Rows, row)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("lab report %s, routing %s, scenario %s: %w", path, routing, scenario, err)
	}
	return m, nil
}

func keys[V any](m map[string]V) string {
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}
