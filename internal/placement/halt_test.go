package placement

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ning-edge/ning/internal/race"
)

// longProblem is a rate-limited (capacity-aware) random problem of n sites
// and n/2 replicas, each replica serving 3/replicas of the traffic, as the
// benchmark report times the planner: at 500 sites Plan takes seconds.
func longProblem(n int) *Problem {
	o := RandomOptions{Sites: n, Replicas: n / 2}
	o.PerReplicaShare = 3.0 / float64(o.Replicas)
	return RandomProblem(rand.New(rand.NewPCG(23, uint64(n))), o)
}

// TestCancelledBeforeStart: every entry point returns at once, with the
// context's error wrapped (errors.Is holds) and the cause named when there
// is one, for a context that has already ended.
func TestCancelledBeforeStart(t *testing.T) {
	p := longProblem(100)
	free := *p
	free.PerReplicaRPS = 0
	small := RandomProblem(rand.New(rand.NewPCG(1, 2)), RandomOptions{Sites: 8, Replicas: 5, PerReplicaShare: 0.2})
	cur := make(Placement, len(p.Sites))
	cur[0] = 3
	calls := []struct {
		name string
		call func(ctx context.Context) error
		want string
	}{
		{"Plan, rate-limited", func(ctx context.Context) error { _, err := Plan(ctx, p); return err }, "planning 50 replicas over 100 sites"},
		{"Plan, no rate limit", func(ctx context.Context) error { _, err := Plan(ctx, &free); return err }, "planning 50 replicas over 100 sites"},
		{"Optimal", func(ctx context.Context) error { _, err := Optimal(ctx, small); return err }, "exact optimum of 5 replicas over 8 sites"},
		{"MarginalGains", func(ctx context.Context) error { _, err := MarginalGains(ctx, p, cur); return err }, "marginal gains over 100 sites"},
	}
	ends := []struct {
		name   string
		ctx    func() context.Context
		is     error
		suffix string
	}{
		{"cancelled", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, context.Canceled, ": context canceled"},
		{"cancelled with a cause", func() context.Context {
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(errors.New("leadership lost"))
			return ctx
		}, context.Canceled, ": context canceled (leadership lost)"},
		{"past its deadline", func() context.Context {
			ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
			t.Cleanup(cancel)
			return ctx
		}, context.DeadlineExceeded, ": context deadline exceeded"},
	}
	for _, c := range calls {
		for _, e := range ends {
			t.Run(c.name+"/"+e.name, func(t *testing.T) {
				err := c.call(e.ctx())
				if !errors.Is(err, e.is) {
					t.Fatalf("err = %v; want it to wrap %v", err, e.is)
				}
				if want := c.want + e.suffix; err.Error() != want {
					t.Fatalf("err = %q; want %q", err, want)
				}
			})
		}
	}
}

// TestCancelStopsLongSolve cancels solves that take seconds (a rate-limited
// plan of 500 sites with 250 replicas: the 100-site one `ning place` ignored
// Ctrl-C on now ends within 100 ms; larger ones cancelled inside their first
// transport or their swap search) and requires
// each to return within 100 ms of the cancel, with the context's error. The
// bound is a correctness limit on how often the solver looks at its context
// (every few tens of microseconds of work), with room for a loaded machine,
// and ten times that under the race detector (race.Scale); how fast the
// solver is, is for the benchmarks.
func TestCancelStopsLongSolve(t *testing.T) {
	bound := race.Scale(100 * time.Millisecond)
	// The problems are drawn before the clock starts: only solving counts.
	p1000 := longProblem(1000)
	free1000 := *p1000
	free1000.PerReplicaRPS = 0
	p500 := longProblem(500)
	// A hundred replicas serving 60 % of the traffic: the overloaded
	// gains, with a hundred open sites, take long enough.
	cur := make(Placement, len(p1000.Sites))
	for r := range 100 {
		cur[(r*37)%len(cur)]++
	}
	tests := []struct {
		name  string
		after time.Duration // when to cancel: well before the solve ends
		solve func(ctx context.Context) error
	}{
		{"Plan, rate-limited, 500 sites", 100 * time.Millisecond,
			func(ctx context.Context) error { _, err := Plan(ctx, p500); return err }},
		{"Plan, rate-limited, 1000 sites", 50 * time.Millisecond,
			func(ctx context.Context) error { _, err := Plan(ctx, p1000); return err }},
		{"Plan, no rate limit, 1000 sites", 100 * time.Millisecond,
			func(ctx context.Context) error { _, err := Plan(ctx, &free1000); return err }},
		{"MarginalGains, rate-limited, 1000 sites", 50 * time.Millisecond,
			func(ctx context.Context) error { _, err := MarginalGains(ctx, p1000, cur); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type result struct {
				err error
				at  time.Time
			}
			done := make(chan result, 1)
			go func() {
				err := tt.solve(ctx)
				done <- result{err, time.Now()}
			}()
			var r result
			select {
			case r = <-done:
				t.Fatalf("the solve ended (err %v) before the cancel at %v: the instance no longer takes long enough to test cancellation; use a larger one", r.err, tt.after)
			case <-time.After(tt.after):
			}
			cancelled := time.Now()
			cancel()
			select {
			case r = <-done:
			case <-time.After(time.Minute):
				t.Fatal("the solve did not return within a minute of the cancel")
			}
			if !errors.Is(r.err, context.Canceled) {
				t.Fatalf("err = %v; want context.Canceled", r.err)
			}
			if took := r.at.Sub(cancelled); took > bound {
				t.Fatalf("returned %v after the cancel; want within %v", took, bound)
			}
		})
	}
}
