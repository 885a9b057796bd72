package benchreport

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ning-edge/ning/internal/bench"
	"github.com/ning-edge/ning/internal/demo"
)

// TestReportWithoutCluster writes the report's cluster-free sections and
// checks the figures and plots are there and honest about what was not run.
func TestReportWithoutCluster(t *testing.T) {
	dir := t.TempDir()
	acc := filepath.Join(dir, "acc.txt")
	if err := os.WriteFile(acc, []byte("udp_echo b 10 ms 10.84 ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Run(t.Context(), Options{Dir: dir, Command: "test", Quick: true, ProbeAccuracy: acc, ProbeAccuracyFailed: true,
		Skip: map[string]bool{"throughput": true, "extender": true, "demo": true}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Errors) > 0 {
		t.Fatalf("sections failed: %v", r.Errors)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Made by `test`", "Machine: ", "| ning | 0.000 %", "## Planner time", "## Capacity-aware planner at scale", "| MarginalGains, overloaded | 50 | 10 | 5 |", "udp_echo b 10 ms 10.84 ms",
		"## Placement quality at scale", "| 20 | 10 | true | 4 |",
		"## Scale of data: probe reports into the store", "| 50 | 50 | ",
		"![gap distribution](quality-gaps.svg)", "the test failed its tolerance"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	for _, bad := range []string{"## Scheduling throughput", "## Convergence"} {
		if strings.Contains(string(md), bad) {
			t.Errorf("report has %q for a section that did not run", bad)
		}
	}
	for _, svg := range []string{"quality-gaps.svg", "planner-time.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, svg))
		if err != nil || !strings.Contains(string(b), "<svg") {
			t.Errorf("%s: not an SVG (%v)", svg, err)
		}
	}
	if len(r.Ingest) != 1 || r.Ingest[0].ReportsPerSecond <= 0 || r.Ingest[0].BytesPerSite <= 0 {
		t.Errorf("ingest section: %+v", r.Ingest)
	}
	// Every baseline is worse than ning on average: the comparison is live.
	ning, _ := meanMax(r.Quality.Gaps["ning"])
	for _, name := range Methods[1:] {
		if m, _ := meanMax(r.Quality.Gaps[name]); m <= ning {
			t.Errorf("baseline %s mean gap %.3f%% is not above ning's %.3f%%", name, m, ning)
		}
	}
}

// TestMarkdownRatios checks that every side-by-side comparison states its
// ratio: throughput against the default profile and against the default
// without spread scoring, the demo's RTTs against the default and the
// optimum, and the ingest figures against the smallest size.
func TestMarkdownRatios(t *testing.T) {
	r := &Report{Command: "test",
		Throughput: []*bench.SchedulerResult{{Nodes: 1000, Sites: 20, Pods: 1000,
			Default: bench.ProfileResult{PodsPerSecond: 300}, Ning: bench.ProfileResult{PodsPerSecond: 270},
			NoSpreadScoring: bench.ProfileResult{PodsPerSecond: 360}, Ratio: 0.9, FairRatio: 0.75}},
		Demo: &demo.Summary{Before: demo.Phase{NingMs: 10, DefaultMs: 20, OptimumMs: 8}, After: demo.Phase{NingMs: 12, DefaultMs: 30, OptimumMs: 12}},
		Ingest: []*bench.IngestResult{
			{Sites: 50, Nodes: 50, Fanout: 16, ReportsPerSecond: 4000, StoreNsPerReport: 50000, BytesPerSite: 2000, BytesPerNode: 2000},
			{Sites: 500, Nodes: 500, Fanout: 16, ReportsPerSecond: 3000, StoreNsPerReport: 100000, BytesPerSite: 2200, BytesPerNode: 2200},
		}}
	md := r.Markdown()
	for _, want := range []string{
		"(ning/default 0.400, ning/optimum 1.000)", "| ning/default | 0.500 | 0.400 |", "| ning/optimum | 1.250 | 1.000 |",
		"| 50 | 50 | 4000 | 1.00 | 50.0 | 1.00 | 2000 | 1.00 | 2000 |", "| 500 | 500 | 3000 | 0.75 | 100.0 | 2.00 | 2200 | 1.10 | 2200 |",
		"ratio to the 50-site row",
		"| 1000 | 20 | 1000 | 300.0 | 270.0 | 360.0 | 0.900 | 0.750 |", "(ning/default 0.900; fair, both without spread scoring, 0.750)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// TestMarkdownProbeAccuracyNotMeasured: without a table, the report says why
// the probe accuracy was not measured, with the test's own skip message when
// make bench passes one.
func TestMarkdownProbeAccuracyNotMeasured(t *testing.T) {
	for _, c := range []struct{ skipped, want string }{
		{"", "Not measured in this run: it needs root"},
		{"netns_test.go:152: network-namespace test skipped: iptables not found",
			"Not measured in this run: `TestNetnsEndToEnd` did not run (netns_test.go:152: network-namespace test skipped: iptables not found)."},
	} {
		md := (&Report{Command: "test", ProbeAccuracySkipped: c.skipped}).Markdown()
		if !strings.Contains(md, c.want) {
			t.Errorf("skipped %q: report lacks %q:\n%s", c.skipped, c.want, md)
		}
	}
}
