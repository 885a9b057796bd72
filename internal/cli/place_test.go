package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		if b.WeightedRTTms < res.WeightedRTTms {
			t.Errorf("baseline %s (%v ms) beats ning (%v ms)", name, b.WeightedRTTms, res.WeightedRTTms)
		}
	}
	if res.WeightedRTTms < res.Optimal.WeightedRTTms {
		t.Errorf("plan below the optimum")
	}
}

func TestPlaceTable(t *testing.T) {
	out, err := runCLI(t, "place", "-f", "../../examples/continental.yaml", "--replicas", "3")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SITE", "NING", "OPTIMAL", "SPREAD", "us-east-1", "weighted RTT (ms)", "above the exact optimum"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
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
