package topology

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newTestStore() (*Store, *clocktesting.FakePassiveClock) {
	clk := clocktesting.NewFakePassiveClock(t0)
	return NewStore(Config{Alpha: 0.5, TTL: time.Minute}, clk), clk
}

func TestObserveRTTEWMA(t *testing.T) {
	s, _ := newTestStore()
	for _, ms := range []float64{10, 20, 40} {
		if err := s.ObserveRTT(RTTSample{From: "a", To: "b", MeanMs: ms, Sent: 5, Received: 5, At: t0}); err != nil {
			t.Fatal(err)
		}
	}
	// 10 -> 0.5*20+0.5*10 = 15 -> 0.5*40+0.5*15 = 27.5
	got, ok := s.RTT("a", "b")
	if !ok || got != 27.5 {
		t.Fatalf("RTT(a,b) = %v, %v; want 27.5, true", got, ok)
	}
	// The reverse direction falls back to the measured one.
	if got, ok := s.RTT("b", "a"); !ok || got != 27.5 {
		t.Fatalf("RTT(b,a) = %v, %v; want the reverse 27.5", got, ok)
	}
	l, _ := s.Link("a", "b")
	if l.Observations != 3 || l.Loss != 0 {
		t.Fatalf("link = %+v", l)
	}
}

func TestAsymmetricEntriesKept(t *testing.T) {
	s, _ := newTestStore()
	mustObserve(t, s, "a", "b", 10)
	mustObserve(t, s, "b", "a", 30)
	if v, _ := s.RTT("a", "b"); v != 10 {
		t.Errorf("a->b = %v, want 10", v)
	}
	if v, _ := s.RTT("b", "a"); v != 30 {
		t.Errorf("b->a = %v, want 30", v)
	}
}

func mustObserve(t *testing.T, s *Store, from, to string, ms float64) {
	t.Helper()
	if err := s.ObserveRTT(RTTSample{From: from, To: to, MeanMs: ms, Sent: 1, Received: 1, At: t0}); err != nil {
		t.Fatal(err)
	}
}

func TestStaleIsUnknownNeverZero(t *testing.T) {
	s, clk := newTestStore()
	mustObserve(t, s, "a", "b", 12)
	clk.SetTime(t0.Add(59 * time.Second))
	if _, ok := s.RTT("a", "b"); !ok {
		t.Fatal("RTT unknown before the TTL")
	}
	clk.SetTime(t0.Add(61 * time.Second))
	if v, ok := s.RTT("a", "b"); ok {
		t.Fatalf("RTT after the TTL = %v, want unknown", v)
	}
	if m := s.Matrix([]string{"a", "b"}); !math.IsInf(m[0][1], 1) || m[0][0] != 0 {
		t.Fatalf("matrix = %v, want +Inf off the diagonal and 0 on it", m)
	}
	// A new measurement after staleness restarts the EWMA instead of blending.
	if err := s.ObserveRTT(RTTSample{From: "a", To: "b", MeanMs: 50, Sent: 1, Received: 1, At: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.RTT("a", "b"); v != 50 {
		t.Fatalf("RTT after restart = %v, want 50", v)
	}
}

func TestTotalLossLetsTheLinkGoStale(t *testing.T) {
	s, clk := newTestStore()
	mustObserve(t, s, "a", "b", 12)
	for i := 1; i <= 4; i++ {
		clk.SetTime(t0.Add(time.Duration(i) * 20 * time.Second))
		if err := s.ObserveRTT(RTTSample{From: "a", To: "b", Sent: 5, Received: 0, At: clk.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := s.RTT("a", "b"); ok {
		t.Fatal("a partitioned link still has a known RTT after the TTL")
	}
	l, _ := s.Link("a", "b")
	if l.Loss < 0.9 {
		t.Fatalf("loss = %v, want near 1", l.Loss)
	}
}

func TestStaticAndMeasured(t *testing.T) {
	s, clk := newTestStore()
	if err := s.SetStaticRTT("a", "b", 30); err != nil {
		t.Fatal(err)
	}
	if v, ok := s.RTT("b", "a"); !ok || v != 30 {
		t.Fatalf("static reverse = %v, %v", v, ok)
	}
	mustObserve(t, s, "b", "a", 20)
	if v, _ := s.RTT("a", "b"); v != 20 {
		t.Fatalf("a fresh measurement must win over the static figure, got %v", v)
	}
	clk.SetTime(t0.Add(time.Hour))
	if v, ok := s.RTT("a", "b"); !ok || v != 30 {
		t.Fatalf("after the measurement went stale = %v, %v; want the static 30", v, ok)
	}
}

func TestRejections(t *testing.T) {
	s, _ := newTestStore()
	tests := []struct {
		name   string
		sample RTTSample
		reason string
		msg    string
	}{
		{"negative", RTTSample{From: "a", To: "b", MeanMs: -1, Sent: 1, Received: 1, At: t0}, ReasonBadRTT, "a -> b: RTT -1 ms is negative"},
		{"nan", RTTSample{From: "a", To: "b", MeanMs: math.NaN(), Sent: 1, Received: 1, At: t0}, ReasonBadRTT, "a -> b: RTT NaN ms is not a finite number"},
		{"absurd", RTTSample{From: "a", To: "b", MeanMs: 1e9, Sent: 1, Received: 1, At: t0}, ReasonBadRTT, "a -> b: RTT 1e+09 ms is above the 60000 ms limit"},
		{"empty site", RTTSample{From: "", To: "b", MeanMs: 1, Sent: 1, Received: 1, At: t0}, ReasonBadSite, "empty site name"},
		{"received more than sent", RTTSample{From: "a", To: "b", MeanMs: 1, Sent: 1, Received: 2, At: t0}, ReasonBadLoss, "a -> b: received 2 of 1 probes"},
		{"future", RTTSample{From: "a", To: "b", MeanMs: 1, Sent: 1, Received: 1, At: t0.Add(time.Hour)}, ReasonFutureTS, "timestamp 2026-01-02T04:04:05Z is 1h0m0s ahead of this clock (at most 10s allowed)"},
		{"no time", RTTSample{From: "a", To: "b", MeanMs: 1, Sent: 1, Received: 1}, ReasonMissingTS, "observation has no timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.ObserveRTT(tt.sample)
			var re *RejectError
			if !errors.As(err, &re) || re.Reason != tt.reason || err.Error() != tt.msg {
				t.Fatalf("err = %v (%T); want reason %s, message %q", err, err, tt.reason, tt.msg)
			}
		})
	}
	if len(s.Sites()) != 0 || s.Version() != 0 {
		t.Fatalf("a rejected sample changed the store: sites %v version %d", s.Sites(), s.Version())
	}
}

func TestSmallFutureSkewTolerated(t *testing.T) {
	s, _ := newTestStore()
	if err := s.ObserveRTT(RTTSample{From: "a", To: "b", MeanMs: 1, Sent: 1, Received: 1, At: t0.Add(5 * time.Second)}); err != nil {
		t.Fatalf("5 s of skew rejected: %v", err)
	}
}

func TestLoad(t *testing.T) {
	s, clk := newTestStore()
	if err := s.ObserveLoad("n1", Load{CPU: 0.2, Updated: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.ObserveLoad("n1", Load{CPU: 0.6, PSI: PSI{CPU: Pressure{Some: 12}}, Updated: t0}); err != nil {
		t.Fatal(err)
	}
	l, ok := s.Load("n1")
	if !ok || math.Abs(l.CPU-0.4) > 1e-9 || l.PSI.CPU.Some != 12 {
		t.Fatalf("load = %+v, %v; want CPU 0.4 (EWMA), PSI cpu some 12", l, ok)
	}
	for _, bad := range []Load{{CPU: 1.5, Updated: t0}, {CPU: math.NaN(), Updated: t0}, {CPU: 0.1, PSI: PSI{IO: Pressure{Full: -1}}, Updated: t0}} {
		if err := s.ObserveLoad("n1", bad); err == nil {
			t.Errorf("load %+v accepted", bad)
		}
	}
	clk.SetTime(t0.Add(2 * time.Minute))
	if _, ok := s.Load("n1"); ok {
		t.Fatal("stale load still reported")
	}
}

func TestTraffic(t *testing.T) {
	s, clk := newTestStore()
	if err := s.SetTraffic("a", 10, t0, false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetTraffic("b", 5, time.Time{}, true); err != nil {
		t.Fatal(err)
	}
	if err := s.SetTraffic("c", -1, t0, false); err == nil {
		t.Fatal("negative rate accepted")
	}
	clk.SetTime(t0.Add(2 * time.Minute))
	got := s.Traffic()
	if len(got) != 1 || got["b"] != 5 {
		t.Fatalf("traffic = %v; want only the static b=5 after the TTL", got)
	}
}

func TestSiteOf(t *testing.T) {
	if got := SiteOf("n1", map[string]string{DefaultSiteLabel: "z1"}, DefaultSiteLabel); got != "z1" {
		t.Errorf("labelled node: %q", got)
	}
	if got := SiteOf("n1", map[string]string{"other": "z1"}, DefaultSiteLabel); got != "n1" {
		t.Errorf("unlabelled node must be its own site, got %q", got)
	}
}

// TestLoadSnapshot: the snapshot holds what Load returns, entry by entry, as
// time passes (entries leave it at the TTL) and as reports arrive (a new node
// joins it, a report changes a node's value): a cached snapshot must not
// outlive either.
func TestLoadSnapshot(t *testing.T) {
	s, clk := newTestStore() // TTL one minute
	for node, at := range map[string]time.Time{"a-1": t0, "b-1": t0.Add(-30 * time.Second), "c-1": t0.Add(-50 * time.Second)} {
		if err := s.ObserveLoad(node, Load{CPU: 0.5, Updated: at}); err != nil {
			t.Fatal(err)
		}
	}
	same := func(when string) {
		t.Helper()
		snap := s.LoadSnapshot()
		for _, node := range []string{"a-1", "b-1", "c-1", "d-1"} {
			l, fresh := s.Load(node)
			if got, ok := snap[node]; ok != fresh || got != l {
				t.Errorf("%s: snapshot has %s = %+v (%v), Load says %+v (%v)", when, node, got, ok, l, fresh)
			}
		}
	}
	for _, c := range []struct {
		after time.Duration
		want  int
	}{{0, 3}, {10 * time.Second, 3}, {10*time.Second + 1, 2}, {31 * time.Second, 1}, {time.Minute, 1}, {time.Minute + 1, 0}} {
		clk.SetTime(t0.Add(c.after))
		if got := len(s.LoadSnapshot()); got != c.want {
			t.Errorf("%v after t0: %d fresh loads, want %d", c.after, got, c.want)
		}
		same(fmt.Sprint(c.after, " after t0"))
	}
	clk.SetTime(t0)
	for _, r := range []struct {
		node string
		cpu  float64
	}{{"d-1", 0.2}, {"a-1", 0.9}} {
		if err := s.ObserveLoad(r.node, Load{CPU: r.cpu, Updated: t0}); err != nil {
			t.Fatal(err)
		}
		same("after a report from " + r.node)
	}
	if got := s.LoadSnapshot()["a-1"].CPU; got == 0.5 {
		t.Errorf("a-1's CPU after a report of 0.9 is still %v in the snapshot", got)
	}
}

func TestStaleLoadsAreDropped(t *testing.T) {
	s, clk := newTestStore() // TTL one minute
	if err := s.ObserveLoad("gone-1", Load{CPU: 0.5, Updated: t0}); err != nil {
		t.Fatal(err)
	}
	clk.SetTime(t0.Add(2 * time.Minute))
	for i := range loadSweepEvery {
		if err := s.ObserveLoad(fmt.Sprintf("n-%d", i%10), Load{CPU: 0.5, Updated: clk.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.RLock()
	_, kept := s.loads["gone-1"]
	n := len(s.loads)
	s.mu.RUnlock()
	if kept || n != 10 {
		t.Errorf("after a sweep: gone-1 kept %v, %d loads; want it dropped and 10 left", kept, n)
	}
	if got := len(s.LoadSnapshot()); got != 10 {
		t.Errorf("%d fresh loads, want 10", got)
	}
}

// TestMaxSites fills a store to its site limit through every writer and
// checks that a new site past it is refused, while known sites still update.
func TestMaxSites(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(t0)
	s := NewStore(Config{MaxSites: 3}, clk)
	steps := []struct {
		name string
		do   func() error
		want string // the rejection reason, "" for accepted
	}{
		{"a->b", func() error {
			return s.ObserveRTT(RTTSample{From: "a", To: "b", MeanMs: 1, Sent: 1, Received: 1, At: t0})
		}, ""},
		{"traffic c", func() error { return s.SetTraffic("c", 1, t0, false) }, ""},
		{"a->d", func() error {
			return s.ObserveRTT(RTTSample{From: "a", To: "d", MeanMs: 1, Sent: 1, Received: 1, At: t0})
		}, ReasonTooManySites},
		{"static d->e", func() error { return s.SetStaticRTT("d", "e", 1) }, ReasonTooManySites},
		{"traffic d", func() error { return s.SetTraffic("d", 1, t0, false) }, ReasonTooManySites},
		{"known b->c", func() error {
			return s.ObserveRTT(RTTSample{From: "b", To: "c", MeanMs: 1, Sent: 1, Received: 1, At: t0})
		}, ""},
		{"static c->a", func() error { return s.SetStaticRTT("c", "a", 2) }, ""},
	}
	for _, st := range steps {
		err := st.do()
		var re *RejectError
		got := ""
		if errors.As(err, &re) {
			got = re.Reason
		} else if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got != st.want {
			t.Errorf("%s: rejection %q (%v), want %q", st.name, got, err, st.want)
		}
	}
	if got := fmt.Sprint(s.Sites()); got != "[a b c]" {
		t.Errorf("Sites() = %s, want [a b c]", got)
	}
	err := s.SetTraffic("zz", 1, t0, false)
	if want := `site "zz" is new and the store already holds data for 3 sites (its limit 3)`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

func TestLastHeard(t *testing.T) {
	s, clk := newTestStore()
	observe := func(from, to string, received int, at time.Time) {
		t.Helper()
		if err := s.ObserveRTT(RTTSample{From: from, To: to, MeanMs: 10, Sent: 3, Received: received, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetStaticRTT("a", "c", 5); err != nil {
		t.Fatal(err)
	}
	observe("a", "b", 3, t0.Add(-time.Second))
	observe("a", "c", 0, t0) // every probe to c lost
	clk.SetTime(t0.Add(time.Minute))
	observe("a", "b", 3, t0.Add(30*time.Second))
	observe("a", "b", 3, t0.Add(10*time.Second))            // an older report (retained) does not go back
	observe("d", "a", 0, t0.Add(time.Minute+5*time.Second)) // stamped ahead of this clock: heard now
	// A round that took 10 s: its reporter was alive at its end, its
	// target only when the probes went out (it may have gone dark since).
	if err := s.ObserveRTT(RTTSample{From: "e", To: "f", MeanMs: 10, Sent: 3, Received: 1, At: t0.Add(50 * time.Second), Reached: t0.Add(40 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	err := s.ObserveRTT(RTTSample{From: "e", To: "f", MeanMs: 10, Sent: 3, Received: 1, At: t0.Add(50 * time.Second), Reached: t0.Add(55 * time.Second)})
	var re *RejectError
	if !errors.As(err, &re) || re.Reason != ReasonBadTS {
		t.Errorf("probes sent after the measurement: %v, want a %s rejection", err, ReasonBadTS)
	}
	want := map[string]time.Time{"a": t0.Add(30 * time.Second), "b": t0.Add(30 * time.Second), "c": {}, "d": t0.Add(time.Minute),
		"e": t0.Add(50 * time.Second), "f": t0.Add(40 * time.Second), "g": {}}
	for site, at := range want {
		if got := s.LastHeard(site); !got.Equal(at) {
			t.Errorf("LastHeard(%s) = %v, want %v", site, got, at)
		}
	}
}
