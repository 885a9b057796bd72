package bench

import (
	"fmt"
	"testing"
)

// TestRunIngest checks the ingest measurement at a small size: every report
// reaches the store through the broker and the figures are there.
func TestRunIngest(t *testing.T) {
	r, err := RunIngest(t.Context(), IngestOptions{Sites: 40, NodesPerSite: 2, Rounds: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Nodes != 80 || r.Fanout != DefaultIngestFanout || r.Reports != 160 {
		t.Errorf("sized %d nodes, fanout %d, %d reports; want 80, 16, 160", r.Nodes, r.Fanout, r.Reports)
	}
	if r.ReportsPerSecond <= 0 || r.StoreNsPerReport <= 0 || r.BytesPerSite <= 0 || r.BytesPerNode <= 0 {
		t.Errorf("a figure is missing: %+v", r)
	}
	if _, err := RunIngest(t.Context(), IngestOptions{Sites: 1}); err == nil {
		t.Error("one site accepted")
	}
}

// BenchmarkIngest is the scale of data: a prober per site publishing through
// the embedded broker into the store, at 50, 100 and 500 sites.
func BenchmarkIngest(b *testing.B) {
	for _, sites := range IngestSites {
		b.Run(fmt.Sprintf("sites=%d", sites), func(b *testing.B) {
			var r *IngestResult
			for b.Loop() {
				var err error
				if r, err = RunIngest(b.Context(), IngestOptions{Sites: sites, Rounds: 3}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(r.ReportsPerSecond, "reports/s")
			b.ReportMetric(r.StoreNsPerReport, "store-ns/report")
			b.ReportMetric(r.BytesPerSite, "bytes/site")
			b.ReportMetric(r.BytesPerNode, "bytes/node")
		})
	}
}
