package integration

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ning-edge/ning/examples"
	"github.com/ning-edge/ning/internal/demo"
	"github.com/ning-edge/ning/internal/rescheduler"
	"github.com/ning-edge/ning/internal/topology"
)

// TestDemo runs `ning demo`'s scenario on its built-in topology and checks
// the summary: ning's placement beats the default scheduler's and is within
// the rescheduler's threshold of the optimum after the traffic shift, and
// the node loss is healed well before Kubernetes' 300 s toleration.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes about a minute: skipped in -short (make test-integration runs it)")
	}
	spec, err := topology.ParseSpec(examples.EdgeCity)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sum, err := demo.Run(ctx, demo.Options{Spec: spec, SpecName: "edge-city", Out: &out, Seed: 1})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	var text bytes.Buffer
	if err := sum.Print(&text); err != nil {
		t.Fatal(err)
	}
	t.Log(text.String())
	if !strings.Contains(out.String(), "weighted RTT") {
		t.Errorf("no live table in the output:\n%s", out.String())
	}
	for _, problem := range demoProblems(*sum, rescheduler.DefaultConfig().NodeDownAfter) {
		t.Error(problem)
	}
}

// demoMaxGap is how far above the exact optimum ning's weighted RTT may end
// in each phase: the rescheduler's 10 % threshold, which keeps it from moving
// for smaller gains, plus room for its hold cycles and RTT noise. A relative
// bound, since the demo's RTTs are below a millisecond: an absolute "+1 ms"
// let the default scheduler's placement pass.
const demoMaxGap = 0.15

// demoProblems returns every way a demo summary misses what the demo is to
// show: ning within demoMaxGap of the optimum before and after the shift, no
// worse than the default scheduler before it and strictly better after it,
// convergence through at least one move, and the lost node healed within
// twice the rescheduler's node-down delay.
func demoProblems(sum demo.Summary, nodeDownAfter time.Duration) []string {
	var problems []string
	for _, p := range []struct {
		name string
		ph   demo.Phase
	}{{"before the shift", sum.Before}, {"after the shift", sum.After}} {
		if gap := (p.ph.NingMs - p.ph.OptimumMs) / p.ph.OptimumMs; !(gap <= demoMaxGap) {
			problems = append(problems, fmt.Sprintf("%s: ning %.2f ms is %.1f %% above the optimum %.2f ms (at most %.0f %%)",
				p.name, p.ph.NingMs, 100*gap, p.ph.OptimumMs, 100*demoMaxGap))
		}
	}
	if sum.Before.NingMs > sum.Before.DefaultMs {
		problems = append(problems, fmt.Sprintf("before the shift: ning %.2f ms is worse than the default scheduler's %.2f ms", sum.Before.NingMs, sum.Before.DefaultMs))
	}
	if !(sum.After.NingMs < sum.After.DefaultMs) {
		problems = append(problems, fmt.Sprintf("after the shift: ning %.2f ms is not below the default scheduler's %.2f ms", sum.After.NingMs, sum.After.DefaultMs))
	}
	if !sum.Converged || sum.Evictions < 1 {
		problems = append(problems, fmt.Sprintf("after the shift: converged %v with %.0f evictions; want convergence through at least one move", sum.Converged, sum.Evictions))
	}
	if !sum.Recovered || sum.RecoverSec > 2*nodeDownAfter.Seconds() {
		problems = append(problems, fmt.Sprintf("node loss: recovered %v in %.1f s; want within %v", sum.Recovered, sum.RecoverSec, 2*nodeDownAfter))
	}
	return problems
}

// oldDemoPasses is TestDemo's check before demoProblems, kept to show what
// it let through: per phase, ning no worse than the default scheduler and
// within optimum × (1 + threshold) + MinGainMs, the rescheduler's own
// threshold (10 % and 1 ms), which at sub-millisecond RTTs is about the
// default scheduler's figure.
func oldDemoPasses(sum demo.Summary) bool {
	cfg := rescheduler.DefaultConfig()
	for _, ph := range []demo.Phase{sum.Before, sum.After} {
		if ph.NingMs > ph.DefaultMs || ph.NingMs > ph.OptimumMs*(1+cfg.Threshold)+cfg.MinGainMs {
			return false
		}
	}
	return sum.Converged && sum.Evictions >= 1 && sum.Recovered && sum.RecoverSec <= 2*cfg.NodeDownAfter.Seconds()
}

// TestDemoProblems shows that demoProblems rejects what the demo test's
// earlier bound (optimum × 1.1 + 1 ms) let through: before the shift that
// allowed 1.59 ms against an optimum of 0.54 ms, near the default
// scheduler's 1.70 ms. Each case says whether the old check passed it, and
// the old check is run on it to confirm.
func TestDemoProblems(t *testing.T) {
	// The figures of bench/report.md's demo run.
	good := demo.Summary{
		Before:    demo.Phase{NingMs: 0.54, DefaultMs: 1.70, OptimumMs: 0.54},
		After:     demo.Phase{NingMs: 1.00, DefaultMs: 3.63, OptimumMs: 0.91},
		Converged: true, Evictions: 1, Recovered: true, RecoverSec: 20.8,
	}
	tests := []struct {
		name      string
		change    func(*demo.Summary)
		want      int  // problems
		oldPassed bool // the old check let it through
	}{
		{"the measured run", func(*demo.Summary) {}, 0, true},
		{"1.5 ms before the shift", func(s *demo.Summary) { s.Before.NingMs = 1.5 }, 1, true},
		{"just below the default scheduler before the shift", func(s *demo.Summary) { s.Before.NingMs = 1.59 }, 1, true},
		{"level with the default scheduler before the shift", func(s *demo.Summary) {
			s.Before.DefaultMs, s.Before.NingMs = 1.2, 1.2
		}, 1, true},
		{"20 % above the optimum after the shift", func(s *demo.Summary) { s.After.NingMs = 1.092 }, 1, true},
		{"1.9 ms after the shift, twice the optimum", func(s *demo.Summary) { s.After.NingMs = 1.9 }, 1, true},
		{"level with the default scheduler after the shift", func(s *demo.Summary) {
			s.After.DefaultMs, s.After.NingMs = 1.0, 1.0
		}, 1, true},
		{"the default scheduler's own figures in both phases", func(s *demo.Summary) {
			s.Before.NingMs, s.After.NingMs = s.Before.DefaultMs, s.After.DefaultMs
		}, 3, false},
		{"14 % above the optimum after the shift", func(s *demo.Summary) { s.After.NingMs = 1.037 }, 0, true},
		{"no move", func(s *demo.Summary) { s.Evictions = 0 }, 1, false},
		{"slow recovery", func(s *demo.Summary) { s.RecoverSec = 45 }, 1, false},
		{"no optimum (NaN gap)", func(s *demo.Summary) { s.Before.OptimumMs = 0; s.Before.NingMs = 0 }, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			tt.change(&s)
			if got := demoProblems(s, rescheduler.DefaultConfig().NodeDownAfter); len(got) != tt.want {
				t.Errorf("%d problems %q, want %d", len(got), got, tt.want)
			}
			if got := oldDemoPasses(s); got != tt.oldPassed {
				t.Errorf("the old check passed it: %v, want %v", got, tt.oldPassed)
			}
		})
	}
}
