package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/topology"
)

// longPlaceArgs writes a 500-site topology (the placement package's random
// edge cluster) and returns `ning place` arguments for 250 replicas with a
// per-replica rate limit: a capacity-aware plan that takes seconds (the
// 100-site one `ning place` used to finish whatever signal it got now takes
// tens of milliseconds).
func longPlaceArgs(t *testing.T) []string {
	t.Helper()
	p := placement.RandomProblem(rand.New(rand.NewPCG(23, 500)), placement.RandomOptions{Sites: 500, Replicas: 250, PerReplicaShare: 3.0 / 250})
	spec := topology.Spec{LatencyMs: map[string]map[string]float64{}}
	for i, name := range p.Sites {
		spec.Sites = append(spec.Sites, topology.SiteSpec{Name: name, Traffic: p.Traffic[i]})
		spec.LatencyMs[name] = map[string]float64{}
		for j, to := range p.Sites {
			if i != j {
				spec.LatencyMs[name][to] = p.RTT[i][j]
			}
		}
	}
	data, err := json.Marshal(spec) // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "sites-500.yaml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"place", "-f", file, "--replicas", "250", "--per-replica-rps", fmt.Sprint(p.PerReplicaRPS)}
}

// TestPlaceStops runs `ning place` on the long plan and ends it as a user
// would: by cancelling the command's context, by SIGTERM and by SIGINT
// (Ctrl-C) sent to this process. The command must return an error that
// names the cancellation, and the signal when there was one.
func TestPlaceStops(t *testing.T) {
	args := longPlaceArgs(t)
	tests := []struct {
		name string
		sig  syscall.Signal // 0: cancel the context instead
		want string
	}{
		{"cancelled context", 0, "planning 250 replicas over 500 sites: context canceled"},
		{"SIGTERM", syscall.SIGTERM, "planning 250 replicas over 500 sites: context canceled (terminated signal received)"},
		{"SIGINT", syscall.SIGINT, "planning 250 replicas over 500 sites: context canceled (interrupt signal received)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.sig != 0 {
				// Keep the signal from ending the test binary should it
				// arrive before the command listens for it.
				guard := make(chan os.Signal, 1)
				signal.Notify(guard, tt.sig)
				defer signal.Stop(guard)
			}
			done := startCLI(ctx, args...)
			select {
			case err := <-done:
				t.Fatalf("ning place ended (err %v) before it was stopped: the plan no longer takes long enough for this test", err)
			case <-time.After(200 * time.Millisecond):
			}
			var err error
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			timeout := time.After(time.Minute)
			stop := func() {
				if tt.sig == 0 {
					cancel()
				} else if err := syscall.Kill(os.Getpid(), tt.sig); err != nil {
					t.Fatal(err)
				}
			}
			stop()
		wait:
			for {
				select {
				case err = <-done:
					break wait
				case <-tick.C: // a signal sent before the command listened is lost: send again
					stop()
				case <-timeout:
					t.Fatal("ning place did not stop within a minute")
				}
			}
			if !errors.Is(err, context.Canceled) || !strings.HasSuffix(err.Error(), tt.want) {
				t.Fatalf("err = %v; want it to wrap context.Canceled and end with %q", err, tt.want)
			}
		})
	}
}
