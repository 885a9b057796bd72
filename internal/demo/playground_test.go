package demo

import (
	"math"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var sites = []string{"airport", "downtown", "harbour"}

func TestParseTraffic(t *testing.T) {
	tests := []struct {
		name string
		data map[string]string
		want map[string]float64
		err  string
	}{
		{"every site", map[string]string{"airport": "500", "downtown": "12.5", "harbour": "0"},
			map[string]float64{"airport": 500, "downtown": 12.5, "harbour": 0}, ""},
		{"a site left out has none", map[string]string{"airport": " 7 "}, map[string]float64{"airport": 7}, ""},
		{"unknown site", map[string]string{"airport": "1", "moon": "3"}, nil,
			`"moon" is not a site of the topology (sites: airport, downtown, harbour)`},
		{"not a number", map[string]string{"airport": "lots"}, nil, `airport: "lots": want req/s, a finite number of 0 or more`},
		{"negative", map[string]string{"airport": "-1", "harbour": "2"}, nil, `airport: "-1": want req/s, a finite number of 0 or more`},
		{"NaN", map[string]string{"airport": "NaN"}, nil, `airport: "NaN": want req/s, a finite number of 0 or more`},
		{"infinite", map[string]string{"airport": "+Inf"}, nil, `airport: "+Inf": want req/s, a finite number of 0 or more`},
		{"no traffic", map[string]string{"airport": "0"}, nil, "no site has traffic: give at least one a rate above 0"},
		{"every error", map[string]string{"moon": "1", "harbour": "x"}, nil,
			"harbour: \"x\": want req/s, a finite number of 0 or more\n\"moon\" is not a site of the topology (sites: airport, downtown, harbour)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTraffic(tt.data, sites)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseAssignments(t *testing.T) {
	got, err := ParseAssignments([]string{"airport=500", "harbour=0.5"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]float64{"airport": 500, "harbour": 0.5}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		args []string
		err  string
	}{
		{nil, "no SITE=RPS given"},
		{[]string{"airport"}, `"airport": want SITE=RPS, e.g. airport=500`},
		{[]string{"=5"}, `"=5": want SITE=RPS, e.g. airport=500`},
		{[]string{"airport=fast"}, `airport: "fast": want req/s, a finite number of 0 or more`},
		{[]string{"airport=1", "airport=2"}, "airport given twice"},
	} {
		if _, err := ParseAssignments(tt.args); err == nil || err.Error() != tt.err {
			t.Errorf("ParseAssignments(%q): %v, want %q", tt.args, err, tt.err)
		}
	}
}

// FuzzParseTraffic: whatever a ConfigMap holds, ParseTraffic never panics,
// and what it accepts is finite, at known sites, with some traffic.
func FuzzParseTraffic(f *testing.F) {
	f.Add("airport", "500", "moon", "1")
	f.Add("harbour", "1e308", "downtown", "-0")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		got, err := ParseTraffic(map[string]string{k1: v1, k2: v2}, sites)
		if err != nil {
			return
		}
		total := 0.0
		for site, v := range got {
			if !slices.Contains(sites, site) || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Fatalf("accepted %s=%v", site, v)
			}
			total += v
		}
		if total <= 0 {
			t.Fatalf("accepted no traffic: %v", got)
		}
	})
}
