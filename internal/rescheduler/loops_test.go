package rescheduler

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/testcluster"
)

// loopEnv is a mover on sites a, b, c in a row with all traffic at c, more
// than two replicas serve, and web's three pods on a: until all three run
// at c, every cycle it wants to move one toward c.
type loopEnv struct {
	t     *testing.T
	clk   *clocktesting.FakeClock
	cfg   Config
	m     *Metrics
	mv    *mover
	nodes []*v1.Node
	pods  []*v1.Pod
	n     int // pods made, for new names
}

func newLoopEnv(t *testing.T, edit func(*Config)) *loopEnv {
	clk := clocktesting.NewFakeClock(t0)
	cfg := DefaultConfig()
	cfg.HoldCycles, cfg.PerReplicaRPS = 1, 40
	if edit != nil {
		edit(&cfg)
	}
	m := testMetrics(t)
	return &loopEnv{t: t, clk: clk, cfg: cfg, m: m, mv: newMover(cfg, lineStore(t, clk, map[string]float64{"c": 100}, nil), m, discard(), clk),
		nodes: threeNodes(), pods: web("a-0", 3), n: 3}
}

func (e *loopEnv) decide() []proposal {
	return e.mv.decide(context.Background(), newView(e.nodes, e.pods, e.mv.store, e.cfg.SiteLabel), workloads(e.pods, e.cfg.SchedulerName))
}

// move makes one cycle, which must propose one eviction; the evictor
// evicts it and the ReplicaSet's replacement, Ready, lands on node.
func (e *loopEnv) move(node string) {
	e.t.Helper()
	got := e.decide()
	if len(got) != 1 {
		e.t.Fatalf("%v: %d proposals, want 1 (decisions: %v)", e.clk.Now().Sub(t0), len(got), e.decisions())
	}
	e.evict(got[0], node)
}

// evict makes p's eviction, its replacement landing on node, Ready.
func (e *loopEnv) evict(p proposal, node string) {
	e.mv.evicted(p, e.mv.nextMove(p))
	var kept []*v1.Pod
	for _, pod := range e.pods {
		if pod.UID != p.pod.UID {
			kept = append(kept, pod)
		}
	}
	e.n++
	e.pods = append(kept, makePod(fmt.Sprintf("web-%d", e.n)).on(node).owner("ReplicaSet", "web").obj())
}

// quietFor steps the clock by d in Interval cycles and returns the
// proposals made on the way.
func (e *loopEnv) quietFor(d time.Duration) int {
	n := 0
	for end := e.clk.Now().Add(d); e.clk.Now().Before(end); e.clk.Step(e.cfg.Interval) {
		n += len(e.decide())
	}
	return n
}

func (e *loopEnv) decisions() map[string]float64 {
	out := map[string]float64{}
	for _, d := range []string{"cooldown", "bounce_backoff", "settling"} {
		out[d] = testutil.ToFloat64(e.m.Decisions.WithLabelValues(d))
	}
	return out
}

// TestMoverCooldown: after a move whose replacement landed as predicted,
// the workload is left alone for MoveCooldown, then moved again.
func TestMoverCooldown(t *testing.T) {
	e := newLoopEnv(t, func(c *Config) { c.MoveCooldown = 5 * time.Minute })
	e.move("c-0")
	if n := e.quietFor(e.cfg.MoveCooldown); n != 0 {
		t.Fatalf("%d proposals within the cooldown, want none", n)
	}
	if testutil.ToFloat64(e.m.Decisions.WithLabelValues("cooldown")) == 0 {
		t.Errorf("decision cooldown never counted: %v", e.decisions())
	}
	e.move("c-0")
	if got := testutil.ToFloat64(e.m.MoveBounces.WithLabelValues("traffic")); got != 0 {
		t.Errorf("bounces = %v after replacements that landed as predicted, want 0", got)
	}
}

// TestMoverBounceBackoff: a scheduler that puts every replacement back on
// the site its pod left (it disagrees with the prediction) bounces each
// move; each bounce is counted and doubles the wait, up to
// BounceBackoffMax, so that over a day the mover evicts a bounded number
// of times instead of once per cycle. A replacement that lands as
// predicted clears the bounces.
func TestMoverBounceBackoff(t *testing.T) {
	e := newLoopEnv(t, func(c *Config) { c.MoveCooldown, c.BounceBackoffMax = time.Minute, 16*time.Minute })
	// Waits after each bounce: 2, 4, 8, 16, 16, ... min.
	waits := []time.Duration{2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 16 * time.Minute}
	e.move("a-0")
	for i, w := range waits {
		// The cycle after the eviction judges the bounce.
		if n := e.quietFor(w); n != 0 {
			t.Fatalf("bounce %d: %d proposals within %v, want none", i+1, n, w)
		}
		if got := testutil.ToFloat64(e.m.MoveBounces.WithLabelValues("traffic")); got != float64(i+1) {
			t.Fatalf("bounces = %v after %d, want %d", got, i+1, i+1)
		}
		e.move("a-0")
	}
	if testutil.ToFloat64(e.m.Decisions.WithLabelValues("bounce_backoff")) == 0 {
		t.Errorf("decision bounce_backoff never counted: %v", e.decisions())
	}
	// Over a day of bounces: one eviction per BounceBackoffMax, not one per
	// cycle (2,880 cycles of 30 s).
	evictions := 0
	for end := e.clk.Now().Add(24 * time.Hour); e.clk.Now().Before(end); e.clk.Step(e.cfg.Interval) {
		if got := e.decide(); len(got) == 1 {
			e.evict(got[0], "a-0")
			evictions++
		}
	}
	if max := int(24*time.Hour/e.cfg.BounceBackoffMax) + 1; evictions > max {
		t.Errorf("%d evictions in a day of bounces, want at most %d", evictions, max)
	}
	// The scheduler agrees again: the bounces clear, the cooldown alone holds.
	t.Logf("%d evictions in a day of bounces (a cycle every %v, backoff at most %v)", evictions, e.cfg.Interval, e.cfg.BounceBackoffMax)
	e.quietFor(e.cfg.BounceBackoffMax)
	e.move("c-0")
	if n := e.quietFor(e.cfg.MoveCooldown); n != 0 {
		t.Errorf("%d proposals within the cooldown after the bounces cleared", n)
	}
	if last := e.mv.moves[e.pods[0].OwnerReferences[0].UID]; last.Bounces != 0 {
		t.Errorf("bounces in a row = %d after a replacement landed as predicted, want 0", last.Bounces)
	}
	if n := e.quietFor(e.cfg.Interval); n != 1 {
		t.Errorf("%d proposals once the cooldown passed, want 1", n)
	}
}

// TestEvictorRate runs the evictor against a real apiserver under
// EvictionQPS 1 with bursts of 2: a third eviction at once is refused
// (rate_limited, the pod left running) until a second has passed.
func TestEvictorRate(t *testing.T) {
	ctx := context.Background()
	cp := testcluster.Start(t)
	if _, err := testcluster.CreateReadyNode(ctx, cp.Client, testcluster.Node{Name: "n1", Site: "a"}); err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(t0)
	cfg := DefaultConfig()
	cfg.EvictionQPS, cfg.EvictionBurst = 1, 2
	m := testMetrics(t)
	ev := &evictor{client: cp.Client, m: m, log: discard(), recorder: record.NewFakeRecorder(10), rate: evictionRate(cfg), clock: clk}
	// Evictions that do not happen (the pod gone) give their token back:
	// a workload that cannot be evicted does not use up the others' rate.
	for _, ghost := range []string{"gone-0", "gone-1", "gone-2"} {
		p := makePod(ghost).on("n1").owner("ReplicaSet", "web").obj()
		if _, res := ev.evict(ctx, ev.budget(), request{pod: p, workload: "w", reason: ReasonReschedule, metric: "traffic", msg: "moving " + ghost}); res != resultGone {
			t.Fatalf("evicting %s, which was never created: %v, want %v", ghost, res, resultGone)
		}
	}
	var results []result
	for _, name := range []string{"p0", "p1", "p2"} {
		p := makePod(name).on("n1").owner("ReplicaSet", "web").obj()
		createPod(ctx, t, cp.Client, p)
		live, err := cp.Client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, res := ev.evict(ctx, ev.budget(), request{pod: live, workload: "w", reason: ReasonReschedule, metric: "traffic", msg: "moving " + name})
		results = append(results, res)
	}
	if diff := cmp.Diff([]result{resultEvicted, resultEvicted, resultRateLimited}, results); diff != "" {
		t.Errorf("three evictions at once (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(m.Evictions.WithLabelValues("traffic", string(resultRateLimited))); got != 1 {
		t.Errorf("evictions{result=rate_limited} = %v, want 1", got)
	}
	live, err := cp.Client.CoreV1().Pods("default").Get(ctx, "p2", metav1.GetOptions{})
	if err != nil || live.DeletionTimestamp != nil {
		t.Fatalf("the rate-limited pod is gone: %v", err)
	}
	clk.Step(time.Second)
	if _, res := ev.evict(ctx, ev.budget(), request{pod: live, workload: "w", reason: ReasonReschedule, metric: "traffic", msg: "moving p2"}); res != resultEvicted {
		t.Errorf("a second later: %v, want %v", res, resultEvicted)
	}
}

// TestParseMove: an Event's move annotations round-trip, an Event without
// them is not a move, and bad ones are named.
func TestParseMove(t *testing.T) {
	m := policy.LastMove{At: t0.Add(1500 * time.Millisecond), From: "a", To: "c", Bounces: 2}
	uid, got, ok, err := parseMove(moveAnnotations("uid-1", m))
	if err != nil || !ok || uid != "uid-1" || !got.At.Equal(m.At) || got.From != m.From || got.To != m.To || got.Bounces != m.Bounces {
		t.Errorf("round trip: %v %+v %v %v, want uid-1 %+v", uid, got, ok, err, m)
	}
	if _, _, ok, err := parseMove(map[string]string{"other": "x"}); ok || err != nil {
		t.Errorf("no move annotations: ok %v, err %v; want not a move", ok, err)
	}
	for key, bad := range map[string]string{annotationAt: "yesterday", annotationBounces: "-1", annotationWorkload: ""} {
		a := moveAnnotations("uid-1", m)
		a[key] = bad
		if _, _, ok, err := parseMove(a); !ok || err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%q: ok %v, err %v; want an error naming %s", key, bad, ok, err, key)
		}
	}
}
