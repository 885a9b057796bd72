package bench_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ning-edge/ning/test/lab/bench"
)

var labSites = []string{"airport", "cloud", "downtown", "university"}

func TestScenarioFiles(t *testing.T) {
	files, err := filepath.Glob("scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario files: %v", err)
	}
	for _, f := range files {
		if _, err := bench.LoadScenario(f, labSites); err != nil {
			t.Error(err)
		}
	}
}

func TestScenarioErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown site", "name: x\nduration: 10s\nphases: [{at: 0s, rates: {mars: 1}}]", `unknown site "mars"`},
		{"late first phase", "name: x\nduration: 10s\nphases: [{at: 1s, rates: {cloud: 1}}]", "first phase must start at 0s"},
		{"no duration", "name: x\nphases: [{at: 0s, rates: {cloud: 1}}]", "duration 0s"},
		{"negative rate", "name: x\nduration: 10s\nphases: [{at: 0s, rates: {cloud: -1}}]", "rate -1"},
		{"bad action", "name: x\nduration: 10s\nphases: [{at: 0s}]\nevents: [{at: 1s, action: melt, site: cloud}]", `action "melt"`},
		{"event after the end", "name: x\nduration: 10s\nphases: [{at: 0s}]\nevents: [{at: 11s, action: stop, site: cloud}]", "outside the run"},
		{"unknown field", "name: x\nduration: 10s\nphase: []", "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "s.yaml")
			if err := os.WriteFile(f, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := bench.LoadScenario(f, labSites)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func dur(d time.Duration) metav1.Duration { return metav1.Duration{Duration: d} }

// The schedule's rate in each phase is the scenario's (Poisson: within 5 %
// over thousands of arrivals), and it is the same for the same seed.
func TestSchedule(t *testing.T) {
	sc := &bench.Scenario{Name: "s", Duration: dur(200 * time.Second), Phases: []bench.Phase{
		{At: dur(0), Rates: map[string]float64{"downtown": 50}},
		{At: dur(100 * time.Second), Rates: map[string]float64{"downtown": 10}},
	}}
	a := bench.Schedule(sc, "downtown", 2, 7)
	if diff := cmp.Diff(a, bench.Schedule(sc, "downtown", 2, 7), cmp.AllowUnexported(bench.Arrival{})); diff != "" {
		t.Errorf("two schedules with one seed differ: %s", diff)
	}
	count := map[[2]int]int{}
	for _, x := range a {
		count[[2]int{x.Target(), int(x.At() / (100 * time.Second))}]++
	}
	for k, want := range map[[2]int]float64{{0, 0}: 5000, {1, 0}: 5000, {0, 1}: 1000, {1, 1}: 1000} {
		if got := float64(count[k]); math.Abs(got-want) > 0.05*want {
			t.Errorf("target %d phase %d: %v arrivals, want %v ± 5 %%", k[0], k[1], got, want)
		}
	}
}

// A run against a real server: every scheduled request recorded (a slow
// answer does not stop later sends: open loop), errors counted by kind.
func TestLoad(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Host {
		case "slow":
			time.Sleep(300 * time.Millisecond)
		case "broken":
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "pod=p node=n1")
	}))
	defer srv.Close()
	sc := &bench.Scenario{Name: "s", Duration: dur(2 * time.Second), Phases: []bench.Phase{{At: dur(0), Rates: map[string]float64{"a": 50}}}}
	c := bench.LoadConfig{Scenario: sc, Site: "a", URL: srv.URL, Targets: []string{"fast", "slow", "broken"},
		Hosts: []string{"fast", "slow", "broken"}, Seed: 1, Timeout: 2 * time.Second, Start: time.Now()}
	var buf bytes.Buffer
	if err := bench.Load(context.Background(), c, &buf); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := bench.ReadResults(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(bench.Schedule(sc, "a", 3, 1)); len(rs) != want {
		t.Fatalf("%d results, want one per scheduled request (%d)", len(rs), want)
	}
	by := map[string][]bench.Result{}
	for _, r := range rs {
		by[r.Target] = append(by[r.Target], r)
	}
	fast := bench.Summarise(by["fast"], map[string]string{"a": "n1"})
	slow := bench.Summarise(by["slow"], nil)
	broken := bench.Summarise(by["broken"], nil)
	// No bounds on how fast: speed is for benchmarks. A slow answer takes
	// at least its 300 ms, counted from the scheduled send.
	if fast.Errors != 0 || fast.LocalShare != 1 {
		t.Errorf("fast: %+v, want no errors, all served by the site's node", fast)
	}
	if slow.Errors != 0 || slow.P50Ms < 300 {
		t.Errorf("slow: %+v, want no errors and p50 at least 300 ms", slow)
	}
	if broken.Errors != broken.Requests || by["broken"][0].Err != "HTTP 503" {
		t.Errorf("broken: %+v (%q), want every request an HTTP 503 error", broken, by["broken"][0].Err)
	}
}

func TestSettleTime(t *testing.T) {
	ws := func(p95 ...float64) []bench.Window {
		var out []bench.Window
		for i, p := range p95 {
			out = append(out, bench.Window{Start: 5 * float64(i), P95Ms: p, N: 10})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		ws   []bench.Window
		from float64
		want float64
	}{
		{"settles at once", ws(20, 20, 20, 20, 20, 20), 10, 0},
		{"a spike after the shift", ws(20, 20, 80, 60, 21, 20, 20, 20, 20), 10, 10},
		{"a late relapse", ws(20, 20, 80, 20, 20, 90, 20, 20, 20), 10, 20},
		{"never: still rising at the end", ws(20, 20, 20, 20, 20, 20, 40, 80, 160), 10, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := bench.SettleTime(tc.ws, tc.from); got != tc.want {
				t.Errorf("SettleTime = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestQueueFloor checks the simulated M/D/1 queue against Erlang's exact
// waiting-time distribution, W(t) = (1-ρ) Σ_{k≤t/D} (λ(kD-t))^k/k! e^{-λ(kD-t)}:
// the p95 of the response time (wait plus D) and the median, which is D
// itself while fewer than half the requests wait.
func TestQueueFloor(t *testing.T) {
	const d = 0.025
	for _, total := range []float64{44, 57, 64} {
		lambda := total / 4
		rho := lambda * d
		w := func(t float64) float64 {
			sum := 0.0
			for k := 0; float64(k)*d <= t; k++ {
				x := lambda * (float64(k)*d - t)
				sum += math.Pow(x, float64(k)) / math.Gamma(float64(k+1)) * math.Exp(-x)
			}
			return (1 - rho) * sum
		}
		lo, hi := 0.0, 1.0
		for range 60 {
			if m := (lo + hi) / 2; w(m) < 0.95 {
				lo = m
			} else {
				hi = m
			}
		}
		want := (lo + d) * 1000
		p50, p95 := bench.QueueFloor(total, 4, 25*time.Millisecond, 1)
		if math.Abs(p95-want) > 0.02*want {
			t.Errorf("%.0f requests/s over 4 replicas: simulated p95 %.2f ms, Erlang's %.2f ms", total, p95, want)
		}
		if math.Abs(p50-1000*d) > 0.01 {
			t.Errorf("%.0f requests/s over 4 replicas: median %.2f ms, want the service time, 25 ms", total, p50)
		}
	}
	// More servers per replica at the same load per server queue less.
	_, one := bench.QueueFloor(57, 4, 25*time.Millisecond, 1)
	_, two := bench.QueueFloor(114, 4, 25*time.Millisecond, 2)
	if two >= one {
		t.Errorf("concurrency 2 at twice the rate: p95 %.2f ms, not below concurrency 1's %.2f ms", two, one)
	}
}
