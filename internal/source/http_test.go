package source

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/probe"
	"github.com/ning-edge/ning/internal/topology"
)

var testSites = Sites{
	NodeSite: map[string]string{"a-1": "a", "a-2": "a", "b-1": "b", "c-1": "c"},
	IPNode:   map[string]string{"10.0.0.1": "a-1", "10.0.0.2": "a-2", "10.0.1.1": "b-1", "10.0.2.1": "c-1"},
}

// serve answers every request with body and status from a function, so a
// test can change what the server says between polls.
func serve(t *testing.T, answer func() (int, string)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		code, body := answer()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func newHTTPFixture(t *testing.T) (*topology.Store, *clocktesting.FakeClock, *Metrics) {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return topology.NewStore(topology.Config{}, clk), clk, m
}

func TestGoldpingerCheckAll(t *testing.T) {
	good, err := os.ReadFile("testdata/goldpinger/check_all.json")
	if err != nil {
		t.Fatal(err)
	}
	store, clk, m := newHTTPFixture(t)
	body, code := string(good), 200
	url := serve(t, func() (int, string) { return code, body })
	g := NewGoldpinger(store, HTTPConfig{URL: url + "/check_all", MaxBytes: 1 << 16}, testSites, clk, m, discard())
	if err := g.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	type link struct {
		RTT          float64
		Loss         float64
		Observations int64
	}
	get := func(from, to string) link {
		l, _ := store.Link(from, to)
		return link{l.RTTMs, l.Loss, l.Observations}
	}
	// a -> a: 1 and 2 ms; a -> b: 34 ms and one timeout (half lost);
	// b -> a: 36 and 38 ms. The unmapped pod's entries are skipped.
	want := map[[2]string]link{
		{"a", "a"}: {1.5, 0, 1},
		{"a", "b"}: {34, 0.5, 1},
		{"b", "a"}: {37, 0, 1},
		{"b", "b"}: {},
	}
	for k, w := range want {
		if d := cmp.Diff(w, get(k[0], k[1])); d != "" {
			t.Errorf("%s -> %s (-want +got):\n%s", k[0], k[1], d)
		}
	}
	if v := testutil.ToFloat64(m.unmapped.WithLabelValues("goldpinger")); v != 1 {
		t.Errorf("unmapped %v, want 1 (the pod on 10.9.9.9 called from a-1)", v)
	}
	if v := testutil.ToFloat64(m.accepted.WithLabelValues("goldpinger")); v != 1 {
		t.Errorf("accepted %v", v)
	}

	// Bad answers: each rejected whole, counted by reason, store unchanged.
	before := store.Version()
	tests := []struct {
		name, reason string
		code         int
		body         string
	}{
		{"server error", ReasonFetch, 500, `{}`},
		{"not json", ReasonUndecodable, 200, `<html>`},
		{"no responses", ReasonUndecodable, 200, `{"OK": true}`},
		{"trailing data", ReasonUndecodable, 200, `{"responses": {}} {}`},
		{"negative time", topology.ReasonBadRTT, 200, strings.Replace(string(good), `"response-time-ms": 36`, `"response-time-ms": -36`, 1)},
		{"absurd time", topology.ReasonBadRTT, 200, strings.Replace(string(good), `"response-time-ms": 36`, `"response-time-ms": 9e9`, 1)},
		{"ok without time", topology.ReasonBadRTT, 200, strings.Replace(string(good), `, "response-time-ms": 36`, ``, 1)},
		{"too large", ReasonTooLarge, 200, `{"responses": {}, "pad": "` + strings.Repeat("x", 1<<16) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body = tt.code, tt.body
			before := testutil.ToFloat64(m.rejected.WithLabelValues(tt.reason))
			if err := g.Poll(t.Context()); err == nil {
				t.Fatal("accepted")
			}
			if after := testutil.ToFloat64(m.rejected.WithLabelValues(tt.reason)); after != before+1 {
				t.Errorf("rejected{reason=%q} %v -> %v", tt.reason, before, after)
			}
		})
	}
	if store.Version() != before {
		t.Error("a rejected answer changed the store")
	}
}

// TestScoresFromProber serves a real prober's /scores (probe.Scores fed a
// report) and checks the RTTs reach the store.
func TestScoresFromProber(t *testing.T) {
	sc := probe.NewScores("a-1", 0.3)
	sc.Update(&ningv1.LatencyReport{SourceSite: "a", SourceNode: "a-1", Load: &ningv1.NodeLoad{CpuUtilisation: 0.5},
		Targets: []*ningv1.TargetResult{
			{Site: "b", Node: "b-1", Address: "10.0.1.1", Sent: 5, Received: 5, AvgMs: 40},
			{Site: "c", Address: "10.0.2.1", Sent: 5, Received: 0},                        // never answered: score 1
			{Site: "z", Node: "z-9", Address: "10.9.9.9", Sent: 5, Received: 5, AvgMs: 8}, // unknown
		}})
	srv := httptest.NewServer(sc)
	t.Cleanup(srv.Close)
	store, clk, m := newHTTPFixture(t)
	s := NewScores(store, HTTPConfig{URL: srv.URL + "/scores"}, testSites, clk, m, discard())
	if err := s.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ms, ok := store.RTT("a", "b"); !ok || ms != 40 {
		t.Errorf("a -> b: %v %v, want 40 ms", ms, ok)
	}
	if _, ok := store.RTT("a", "c"); ok {
		t.Error("a -> c: a target that never answered has an RTT")
	}
	if l, _ := store.Link("a", "c"); l.Loss != 1 {
		t.Errorf("a -> c: loss %v, want 1", l.Loss)
	}
	if v := testutil.ToFloat64(m.unmapped.WithLabelValues("scores")); v != 1 {
		t.Errorf("unmapped %v, want 1", v)
	}

	before := store.Version()
	tests := []struct{ name, reason, body string }{
		{"object, not list", ReasonUndecodable, `{"hostname": "a-1"}`},
		{"empty list", ReasonUndecodable, `[]`},
		{"latency over 1", topology.ReasonBadRTT, `[{"hostname":"a-1","ipv4":"","cpuEwmaScore":0,"latencyEwmaScore":0},{"hostname":"b-1","ipv4":"10.0.1.1","cpuEwmaScore":0,"latencyEwmaScore":1.5}]`},
		{"negative latency", topology.ReasonBadRTT, `[{"hostname":"a-1","cpuEwmaScore":0,"latencyEwmaScore":0},{"hostname":"b-1","latencyEwmaScore":-0.1}]`},
		{"bad ipv4", ReasonUndecodable, `[{"hostname":"a-1","ipv4":"fe80::1"}]`},
		{"duplicate", ReasonDuplicate, `[{"hostname":"a-1"},{"hostname":"b-1","latencyEwmaScore":0.1},{"hostname":"b-1","latencyEwmaScore":0.2}]`},
		{"no host name", topology.ReasonBadSite, `[{"hostname":"a-1"},{"hostname":"","latencyEwmaScore":0.1}]`},
		{"prober of no site", ReasonUnknownSite, `[{"hostname":"q-1"},{"hostname":"b-1","latencyEwmaScore":0.1}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := serve(t, func() (int, string) { return 200, tt.body })
			s := NewScores(store, HTTPConfig{URL: url}, testSites, clk, m, discard())
			before := testutil.ToFloat64(m.rejected.WithLabelValues(tt.reason))
			if err := s.Poll(t.Context()); err == nil {
				t.Fatal("accepted")
			}
			if after := testutil.ToFloat64(m.rejected.WithLabelValues(tt.reason)); after != before+1 {
				t.Errorf("rejected{reason=%q} %v -> %v", tt.reason, before, after)
			}
		})
	}
	if store.Version() != before {
		t.Error("a rejected answer changed the store")
	}
}

func TestPollerRunAndTimeout(t *testing.T) {
	store, clk, m := newHTTPFixture(t)
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-block }))
	t.Cleanup(func() { close(block); srv.Close() })
	s := NewScores(store, HTTPConfig{URL: srv.URL, Timeout: 50 * time.Millisecond, Interval: 20 * time.Millisecond}, testSites, clk, m, discard())
	start := time.Now()
	if err := s.Poll(t.Context()); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("poll of a hung server: %v after %s", err, time.Since(start))
	}
	if v := testutil.ToFloat64(m.rejected.WithLabelValues(ReasonFetch)); v != 1 {
		t.Errorf("fetch rejections %v", v)
	}
}

func TestLoadLatencyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		want    map[[2]string]float64
		wantErr bool
	}{
		{name: "example yaml", path: "../../examples/edge-city.yaml"},
		{name: "yaml", path: write("t.yaml", "sites:\n  - {name: a, traffic: 5}\n  - {name: b}\nlatencyMs:\n  a: {b: 34}\n"),
			want: map[[2]string]float64{{"a", "b"}: 34, {"b", "a"}: 34}},
		{name: "csv", path: write("m.csv", ",a,b\na,0,12\nb,14,0\n"),
			want: map[[2]string]float64{{"a", "b"}: 12, {"b", "a"}: 14}},
		{name: "negative rtt", path: write("bad.yaml", "sites:\n  - {name: a}\n  - {name: b}\nlatencyMs:\n  a: {b: -1}\n"), wantErr: true},
		{name: "unknown field", path: write("bad2.yaml", "sites:\n  - {name: a, colour: red}\n"), wantErr: true},
		{name: "missing", path: filepath.Join(dir, "none.yaml"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, _, m := newHTTPFixture(t)
			err := LoadLatencyFile(store, tt.path, m)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				if store.Version() != 0 {
					t.Error("a rejected file changed the store")
				}
				return
			}
			if len(store.Sites()) == 0 {
				t.Error("nothing loaded")
			}
			for k, w := range tt.want {
				if got, ok := store.RTT(k[0], k[1]); !ok || got != w {
					t.Errorf("%s -> %s: %v %v, want %v", k[0], k[1], got, ok, w)
				}
			}
		})
	}
}

func TestGoldpingerRunPolls(t *testing.T) {
	good, err := os.ReadFile("testdata/goldpinger/check_all.json")
	if err != nil {
		t.Fatal(err)
	}
	store, clk, m := newHTTPFixture(t)
	url := serve(t, func() (int, string) { return 200, string(good) })
	g := NewGoldpinger(store, HTTPConfig{URL: url, Interval: 10 * time.Millisecond}, testSites, clk, m, discard())
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := g.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(m.accepted.WithLabelValues("goldpinger")); v < 3 {
		t.Errorf("%v polls accepted in 200 ms at a 10 ms interval", v)
	}
	if l, _ := store.Link("a", "b"); l.Observations < 3 {
		t.Errorf("a -> b observed %d times", l.Observations)
	}
}

func TestSitesFromNodes(t *testing.T) {
	mk := func(name, zone string, addrs ...v1.NodeAddress) v1.Node {
		n := v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
		if zone != "" {
			n.Labels[v1.LabelTopologyZone] = zone
		}
		n.Status.Addresses = addrs
		return n
	}
	got := SitesFromNodes([]v1.Node{
		mk("a-1", "a", v1.NodeAddress{Type: v1.NodeInternalIP, Address: "10.0.0.1"}, v1.NodeAddress{Type: v1.NodeHostName, Address: "a-1"}),
		mk("b-1", "b", v1.NodeAddress{Type: v1.NodeExternalIP, Address: "1.2.3.4"}),
		mk("solo", ""),
	}, v1.LabelTopologyZone)
	want := Sites{
		NodeSite: map[string]string{"a-1": "a", "b-1": "b", "solo": "solo"},
		IPNode:   map[string]string{"10.0.0.1": "a-1", "1.2.3.4": "b-1"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if site, ok := got.ofIP("", "9.9.9.9", "1.2.3.4"); !ok || site != "b" {
		t.Errorf("ofIP: %q %v", site, ok)
	}
	if site, ok := got.ofName("solo"); !ok || site != "solo" {
		t.Errorf("ofName: %q %v", site, ok)
	}
}
