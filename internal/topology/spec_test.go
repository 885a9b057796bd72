package topology

import (
	"math"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

const goodSpec = `
sites:
  - {name: dallas, traffic: 100, capacity: 4, nodes: 2}
  - {name: toronto, traffic: 20, capacity: 4, nodes: 2}
  - {name: austin, traffic: 5}
latencyMs:              # RTT in ms; a missing direction takes the reverse one
  dallas: {toronto: 34, austin: 6}
  toronto: {dallas: 36}
`

func TestParseSpec(t *testing.T) {
	spec, err := ParseSpec([]byte(goodSpec))
	if err != nil {
		t.Fatal(err)
	}
	m := spec.Matrix()
	if m[0][1] != 34 || m[1][0] != 36 || m[2][0] != 6 || m[0][0] != 0 {
		t.Fatalf("matrix = %v", m)
	}
	if !math.IsInf(m[1][2], 1) || !math.IsInf(m[2][1], 1) {
		t.Fatalf("toronto-austin is given in neither direction and must be unknown: %v", m)
	}
	if spec.Sites[2].Capacity != nil || *spec.Sites[0].Capacity != 4 {
		t.Fatal("capacity not parsed")
	}
}

func TestParseSpecErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", "topology file is empty"},
		{"unknown field", "sites:\n  - {name: a, rate: 3}\n", `line 2: field rate not found in type topology.SiteSpec`},
		{"unknown top-level field", "sites: [{name: a}]\nlatency: {}\n", `line 2: field latency not found in type topology.Spec`},
		{"no sites", "latencyMs: {}\n", "sites: at least one site is required"},
		{"duplicate site", "sites: [{name: a}, {name: b}, {name: a}]\n", `sites[2].name: site "a" is already defined at sites[0]`},
		{"empty name", "sites: [{name: ''}]\n", "sites[0].name: empty site name"},
		{"negative traffic", "sites: [{name: a, traffic: -2}]\n", "sites[0].traffic: -2 is not a finite non-negative number"},
		{"nan traffic", "sites: [{name: a, traffic: .nan}]\n", "sites[0].traffic: NaN is not a finite non-negative number"},
		{"negative capacity", "sites: [{name: a, capacity: -1}]\n", "sites[0].capacity: -1 is negative"},
		{"min over capacity", "sites: [{name: a, capacity: 1, min: 2}]\n", "sites[0].min: 2 is more than the site's capacity 1"},
		{"unknown from site", "sites: [{name: a}]\nlatencyMs: {b: {a: 1}}\n", `latencyMs.b: unknown site "b" (not in sites)`},
		{"unknown to site", "sites: [{name: a}]\nlatencyMs: {a: {c: 1}}\n", `latencyMs.a.c: unknown site "c" (not in sites)`},
		{"negative rtt", "sites: [{name: a}, {name: b}]\nlatencyMs: {a: {b: -3}}\n", "latencyMs.a.b: RTT -3 ms is negative"},
		{"nan rtt", "sites: [{name: a}, {name: b}]\nlatencyMs: {a: {b: .nan}}\n", "latencyMs.a.b: RTT NaN ms is not a finite number"},
		{"inf rtt", "sites: [{name: a}, {name: b}]\nlatencyMs: {a: {b: .inf}}\n", "latencyMs.a.b: RTT +Inf ms is not a finite number"},
		{"string rtt", "sites: [{name: a}, {name: b}]\nlatencyMs: {a: {b: fast}}\n", "line 2: cannot unmarshal !!str `fast` into float64"},
		{"duplicate key", "sites: [{name: a}, {name: b}]\nlatencyMs: {a: {b: 1, b: 2}}\n", `mapping key "b" already defined`},
		{"two documents", "sites: [{name: a}]\n---\nsites: [{name: b}]\n", "more than one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSpec([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseCSVMatrix(t *testing.T) {
	in := "from,a,b,c\na,0,10,\nb,12,0,20\nc,5,21,0\n"
	spec, err := ParseCSVMatrix([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	m := spec.Matrix()
	if m[0][1] != 10 || m[1][0] != 12 || m[0][2] != 5 || m[2][0] != 5 {
		t.Fatalf("matrix = %v (a->c is empty and must take c->a)", m)
	}
}

func TestParseCSVMatrixErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", "matrix file is empty"},
		{"no sites", "x\n", "line 1: the header names no site"},
		{"duplicate column", ",a,a\na,0,1\n", `line 1, column 3: site "a" is already named in column 2`},
		{"unknown row", ",a,b\na,0,1\nc,1,0\n", `line 3, column 1: site "c" is not in the header`},
		{"duplicate row", ",a,b\na,0,1\na,1,0\n", `line 3, column 1: site "a" already has a row at line 2`},
		{"not a number", ",a,b\na,0,x\nb,1,0\n", `line 2, column 3: "x" is not a number`},
		{"negative", ",a,b\na,0,-4\nb,1,0\n", "line 2, column 3: RTT -4 ms is negative"},
		{"nan", ",a,b\na,0,NaN\nb,1,0\n", "line 2, column 3: RTT NaN ms is not a finite number"},
		{"not square", ",a,b,c\na,0,1,2\nb,1,0,3\n", "not square: no row for c"},
		{"ragged", ",a,b\na,0\n", "wrong number of fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCSVMatrix([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadSpec(t *testing.T) {
	spec, err := ParseSpec([]byte(goodSpec))
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakePassiveClock(t0)
	s := NewStore(Config{}, clk)
	if err := s.LoadSpec(spec); err != nil {
		t.Fatal(err)
	}
	clk.SetTime(t0.Add(24 * time.Hour))
	if v, ok := s.RTT("austin", "dallas"); !ok || v != 6 {
		t.Fatalf("static RTT = %v, %v", v, ok)
	}
	if tr := s.Traffic(); tr["dallas"] != 100 || tr["austin"] != 5 {
		t.Fatalf("traffic = %v", tr)
	}
}

// FuzzParseSpec checks that no input crashes the parser and that whatever it
// accepts is a valid spec with a finite, non-negative known matrix.
func FuzzParseSpec(f *testing.F) {
	f.Add([]byte(goodSpec))
	f.Add([]byte("sites: [{name: a}]\n"))
	f.Add([]byte("sites: [{name: a, capacity: 1, min: 1}]\nlatencyMs: {a: {a: 0.5}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := ParseSpec(data)
		if err != nil {
			return
		}
		checkSpec(t, spec)
	})
}

// FuzzParseCSVMatrix is FuzzParseSpec for the CSV matrix format.
func FuzzParseCSVMatrix(f *testing.F) {
	f.Add([]byte("from,a,b\na,0,10\nb,12,0\n"))
	f.Add([]byte(",a\na,\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := ParseCSVMatrix(data)
		if err != nil {
			return
		}
		checkSpec(t, spec)
	})
}

func checkSpec(t *testing.T, spec *Spec) {
	t.Helper()
	if err := spec.Validate(); err != nil {
		t.Fatalf("accepted spec does not validate: %v", err)
	}
	for i, row := range spec.Matrix() {
		for j, v := range row {
			if math.IsNaN(v) || v < 0 || (!math.IsInf(v, 1) && v > MaxRTTMs) {
				t.Fatalf("matrix[%d][%d] = %v", i, j, v)
			}
		}
	}
}

// TestLoadSpecCapacities: a topology file's capacities reach the store, and
// the next file replaces them.
func TestLoadSpecCapacities(t *testing.T) {
	s := NewStore(Config{}, clocktesting.NewFakeClock(time.Unix(0, 0)))
	two := 2
	if err := s.LoadSpec(&Spec{Sites: []SiteSpec{{Name: "a", Capacity: &two}, {Name: "b"}}}); err != nil {
		t.Fatal(err)
	}
	if got := s.Capacities(); len(got) != 1 || got["a"] != 2 {
		t.Fatalf("Capacities = %v, want a:2", got)
	}
	if err := s.LoadSpec(&Spec{Sites: []SiteSpec{{Name: "a"}}}); err != nil {
		t.Fatal(err)
	}
	if got := s.Capacities(); len(got) != 0 {
		t.Fatalf("Capacities after a file without any = %v, want none", got)
	}
}
