package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/topology"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// checkContains fails t for each of wants that out (what is named) lacks.
func checkContains(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, out)
		}
	}
}

// startCLI runs ning with args in the background until ctx ends; the
// channel gets what the command returned.
func startCLI(ctx context.Context, args ...string) <-chan error {
	done := make(chan error, 1)
	go func() {
		root := NewRoot()
		root.SetOut(io.Discard)
		root.SetArgs(args)
		done <- root.ExecuteContext(ctx)
	}()
	return done
}

func TestPlaceJSON(t *testing.T) {
	out, err := runCLI(t, "place", "-f", "../../examples/edge-city.yaml", "--replicas", "4", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var res PlaceResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	total := 0
	for _, n := range res.Placement {
		total += n
	}
	if total != 4 || res.Optimal == nil || res.GapPercent == nil {
		t.Fatalf("result = %+v", res)
	}
	for _, name := range []string{"spread", "busiest-nearest", "seed-extender"} {
		b, ok := res.Baselines[name]
		if !ok {
			t.Fatalf("baseline %s missing", name)
		}
		if *b.WeightedRTTms < *res.WeightedRTTms {
			t.Errorf("baseline %s (%v ms) beats ning (%v ms)", name, *b.WeightedRTTms, *res.WeightedRTTms)
		}
	}
	if *res.WeightedRTTms < *res.Optimal.WeightedRTTms {
		t.Errorf("plan below the optimum")
	}
}

func TestPlaceTable(t *testing.T) {
	out, err := runCLI(t, "place", "-f", "../../examples/continental.yaml", "--replicas", "3")
	if err != nil {
		t.Fatal(err)
	}
	checkContains(t, "table", out, "SITE", "NING", "OPTIMAL", "SPREAD", "us-east-1", "weighted RTT (ms)", "above the exact optimum")
}

// orInf is a weighted RTT with unknown (nil) as +Inf, for comparisons.
func orInf(v *float64) float64 {
	if v == nil {
		return math.Inf(1)
	}
	return *v
}

// TestPlaceUnknownRTT: with no RTT between the two sites that have traffic,
// one replica cannot have a known weighted RTT. The JSON says null and the
// table "unknown"; neither shows placement's unknown-RTT penalty.
func TestPlaceUnknownRTT(t *testing.T) {
	file := filepath.Join(t.TempDir(), "split.yaml")
	if err := os.WriteFile(file, []byte("sites:\n  - {name: a, traffic: 100}\n  - {name: b, traffic: 20}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "place", "-f", file, "--replicas", "1", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var res PlaceResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if res.WeightedRTTms != nil || res.Optimal == nil || res.Optimal.WeightedRTTms != nil || res.GapPercent != nil {
		t.Errorf("one replica, no RTT between the traffic sites: want null weighted RTTs and no gap:\n%s", out)
	}
	table, err := runCLI(t, "place", "-f", file, "--replicas", "1")
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{out, table} {
		if strings.Contains(text, "100000") || strings.Contains(text, "1e+05") {
			t.Errorf("the output shows the unknown-RTT penalty:\n%s", text)
		}
	}
	checkContains(t, "table", table, "weighted RTT (ms)           unknown  unknown", "no gap to the optimum: a weighted RTT is unknown")
	// Two replicas reach both sites at a known RTT (0 ms, each its own).
	out, err = runCLI(t, "place", "-f", file, "--replicas", "2", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	res = PlaceResult{}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.WeightedRTTms == nil || *res.WeightedRTTms != 0 || res.GapPercent == nil {
		t.Errorf("two replicas, one per traffic site: want a weighted RTT of 0 ms and a gap:\n%s", out)
	}
}

func TestPlaceErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("sites: [{name: a, capcity: 2}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(dir, "small.yaml")
	if err := os.WriteFile(small, []byte("sites: [{name: a, capacity: 1}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"place", "--replicas", "2"}, `required flag(s) "file" not set`},
		{[]string{"place", "-f", bad, "--replicas", "2"}, "field capcity not found"},
		{[]string{"place", "-f", small, "--replicas", "2"}, "only 1 of 2 replicas fit in the sites' capacity"},
		{[]string{"place", "-f", small, "--replicas", "0"}, "--replicas 0: want at least 1"},
		{[]string{"place", "-f", small, "--replicas", "1", "-o", "yaml"}, `--output "yaml": want table or json`},
		{[]string{"place", "-f", filepath.Join(dir, "none.yaml"), "--replicas", "1"}, "reading topology"},
		{[]string{"place", "-f", small, "--replicas", "1", "--per-replica-rps", "-5"}, "per-replica rate -5 is not a finite non-negative number"},
	}
	for _, tt := range tests {
		_, err := runCLI(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v; want it to contain %q", tt.args, err, tt.want)
		}
	}
}

// TestExamplesPlanQuality checks the planner on every example topology, for
// every replica count up to two more than the sites, with and without a
// per-replica rate limit: never worse than a baseline, and its mean gap to the
// exact optimum under 2 %.
func TestExamplesPlanQuality(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	var gaps []float64
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := topology.ParseSpec(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for r := 1; r <= len(spec.Sites)+2; r++ {
			for _, limited := range []bool{false, true} {
				p := placement.FromSpec(spec, r, 0)
				if limited {
					p.PerReplicaRPS = math.Ceil(1.2 * p.TotalTraffic() / float64(r))
				}
				if p.Validate() != nil {
					continue
				}
				res, err := Place(t.Context(), p)
				if err != nil {
					t.Fatalf("%s r=%d: %v", f, r, err)
				}
				for name, b := range res.Baselines {
					if orInf(res.WeightedRTTms) > orInf(b.WeightedRTTms) {
						t.Errorf("%s r=%d limited=%v: ning %v ms, worse than %s %v ms", f, r, limited, orInf(res.WeightedRTTms), name, orInf(b.WeightedRTTms))
					}
				}
				if res.GapPercent != nil {
					gaps = append(gaps, *res.GapPercent)
				}
			}
		}
	}
	mean, worst := 0.0, 0.0
	for _, g := range gaps {
		mean += g / float64(len(gaps))
		worst = math.Max(worst, g)
	}
	t.Logf("examples: %d instances with an exact optimum, mean gap %.3f%%, worst %.3f%%", len(gaps), mean, worst)
	if len(gaps) < 20 || mean >= 2 {
		t.Fatalf("%d instances, mean gap %.3f%%", len(gaps), mean)
	}
}

// TestPlaceDelayLayers checks `ning place --delay-layers` on a small file
// (exact clusters, with and without --replicas, JSON and table) and on every
// example topology: the clusters partition the sites and every pair inside
// one is within the layer's delay in the file.
func TestPlaceDelayLayers(t *testing.T) {
	small := filepath.Join(t.TempDir(), "small.yaml")
	if err := os.WriteFile(small, []byte(`sites:
  - {name: siteA, traffic: 10}
  - {name: siteB, traffic: 10}
  - {name: siteC, traffic: 10}
  - {name: siteD, traffic: 10}
latencyMs:
  siteA: {siteB: 12, siteC: 70}
  siteB: {siteC: 60}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "place", "-f", small, "--delay-layers", "30ms,80ms", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "delayLayers": {
    "30ms": [
      [
        "siteA",
        "siteB"
      ],
      [
        "siteC"
      ],
      [
        "siteD"
      ]
    ],
    "80ms": [
      [
        "siteA",
        "siteB",
        "siteC"
      ],
      [
        "siteD"
      ]
    ]
  }
}
`
	if out != want {
		t.Fatalf("ning place --delay-layers -o json:\n%s\nwant:\n%s", out, want)
	}
	out, err = runCLI(t, "place", "-f", small, "--delay-layers", "80,30ms", "--replicas", "1")
	if err != nil {
		t.Fatal(err)
	}
	checkContains(t, "ning place --delay-layers --replicas 1", out, "NING",
		"delay zones within 30ms: [siteA siteB] [siteC] [siteD]\n",
		"delay zones within 80ms: [siteA siteB siteC] [siteD]\n")
	if _, err := runCLI(t, "place", "-f", small, "--delay-layers", "30ms,soon"); err == nil ||
		err.Error() != `--delay-layers: delay layer "soon" is not a delay (want e.g. 30ms or 30)` {
		t.Fatalf("bad --delay-layers: err = %v", err)
	}

	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, file := range files {
		out, err := runCLI(t, "place", "-f", file, "--delay-layers", "2ms,5ms,10ms,30ms,80ms", "--replicas", "1", "-o", "json")
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var res PlaceResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%s: output is not JSON: %v", file, err)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := topology.ParseSpec(data)
		if err != nil {
			t.Fatal(err)
		}
		p := placement.FromSpec(spec, 1, 0)
		index := map[string]int{}
		for i, s := range p.Sites {
			index[s] = i
		}
		if len(res.DelayLayers) != 5 {
			t.Fatalf("%s: %d layers, want 5", file, len(res.DelayLayers))
		}
		for key, clusters := range res.DelayLayers {
			d, err := placement.ParseDelayLayers(key)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, c := range clusters {
				for _, a := range c {
					if seen[a] {
						t.Errorf("%s %s: %s in two clusters", file, key, a)
					}
					seen[a] = true
					for _, b := range c {
						if r := math.Max(p.RTT[index[a]][index[b]], p.RTT[index[b]][index[a]]); r > d[0] {
							t.Errorf("%s %s: %s and %s share a cluster %v ms apart", file, key, a, b, r)
						}
					}
				}
			}
			if len(seen) != len(p.Sites) {
				t.Errorf("%s %s: clusters cover %d of %d sites", file, key, len(seen), len(p.Sites))
			}
		}
	}
}
