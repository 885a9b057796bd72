package integration

import (
	"bytes"
	"context"
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
	cfg := rescheduler.DefaultConfig()
	for name, ph := range map[string]demo.Phase{"before the shift": sum.Before, "after the shift": sum.After} {
		if ph.NingMs > ph.DefaultMs {
			t.Errorf("%s: ning %.2f ms is worse than the default scheduler's %.2f ms", name, ph.NingMs, ph.DefaultMs)
		}
		if limit := ph.OptimumMs*(1+cfg.Threshold) + cfg.MinGainMs; ph.NingMs > limit {
			t.Errorf("%s: ning %.2f ms, optimum %.2f ms: more than the rescheduler's threshold apart", name, ph.NingMs, ph.OptimumMs)
		}
	}
	if !sum.Converged || sum.Evictions < 1 {
		t.Errorf("after the shift: converged %v with %.0f evictions; want convergence through at least one move", sum.Converged, sum.Evictions)
	}
	if !sum.Recovered || sum.RecoverSec > 2*cfg.NodeDownAfter.Seconds() {
		t.Errorf("node loss: recovered %v in %.1f s; want within %v", sum.Recovered, sum.RecoverSec, 2*cfg.NodeDownAfter)
	}
}
