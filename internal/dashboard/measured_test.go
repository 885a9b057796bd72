package dashboard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadMeasured reads the repository's bench/lab.json and rejects
// reports that lack a method or carry impossible figures, naming them.
func TestLoadMeasured(t *testing.T) {
	m, err := LoadMeasured("../../bench/lab.json", "plain", "steady")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Rows) != 3 || m.Rows[0].Name != CompareNing || m.Rows[1].Name != CompareDefault || m.Rows[2].Name != CompareOptimum {
		t.Fatalf("rows %+v: want ning, the default scheduler and the optimum", m.Rows)
	}
	for _, r := range m.Rows {
		if r.P50Ms <= 0 || r.P95Ms < r.P50Ms || r.P99Ms < r.P95Ms || r.Requests == 0 {
			t.Errorf("%s: p50 %v p95 %v p99 %v over %d requests: not the lab's figures", r.Name, r.P50Ms, r.P95Ms, r.P99Ms, r.Requests)
		}
	}
	dir := t.TempDir()
	for name, tc := range map[string]struct{ body, want string }{
		"empty":     {`{}`, `no "routing" results`},
		"no method": {`{"routing": {"plain": {"steady": {"ning": {"p50Ms": 1, "p95Ms": 2, "p99Ms": 3}, "default": {"p50Ms": 1, "p95Ms": 2, "p99Ms": 3}}}}}`, `no method "optimal"`},
		"no p95":    {`{"routing": {"plain": {"steady": {"ning": {"p50Ms": 1, "p99Ms": 3}, "default": {"p50Ms": 1, "p95Ms": 2, "p99Ms": 3}, "optimal": {"p50Ms": 1, "p95Ms": 2, "p99Ms": 3}}}}}`, "ning: no p95Ms"},
		"negative":  {`{"routing": {"plain": {"steady": {"ning": {"p50Ms": -1, "p95Ms": 2, "p99Ms": 3}, "default": {"p50Ms": 1, "p95Ms": 2, "p99Ms": 3}, "optimal": {"p50Ms": 1, "p95Ms": 2, "p99Ms": 3}}}}}`, "ning: p50Ms -1: want a finite number"},
		"not json":  {`routing: plain`, "not bench/lab.json"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
		if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadMeasured(path, "plain", "steady"); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v, want it to name the file and say %q", name, err, tc.want)
		}
	}
}
