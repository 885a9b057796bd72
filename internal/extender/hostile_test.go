package extender

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/httpserve"
	"github.com/ning-edge/ning/internal/httpserve/hostiletest"
	"github.com/ning-edge/ning/internal/topology"
)

// TestHostileClients starts the extender as `ning extender` does
// (extender.Run on a TCP listener, here over a fake clientset) with a 64 KiB
// body limit and short timeouts, throws the hostile clients at it, and reads
// the rejections from its /metrics.
func TestHostileClients(t *testing.T) {
	store := topology.NewStore(topology.Config{}, clock.RealClock{})
	for k, v := range testRTT {
		if err := store.SetStaticRTT(k[0], k[1], v); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client := startCluster(t, testNodes()...)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, client, store, RunOptions{
			Config: Config{Limits: Limits{MaxBodyBytes: 64 << 10}},
			Server: httpserve.Options{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: time.Second},
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("extender.Run: %v", err)
		}
	})
	addr := ln.Addr().String()
	ok := string(args(t, makePod("p", map[string]string{"delay_a": "20"}), allNodes, true))
	hostiletest.Run(t, hostiletest.Target{
		Addr:      addr,
		OK:        hostiletest.Request{Method: "POST", Path: "/filter", Body: ok},
		JSON:      "/filter",
		BodyLimit: 64 << 10,
		WrongMethods: []hostiletest.Request{
			{Method: "GET", Path: "/filter"}, {Method: "PUT", Path: "/" + verbPrioritize, Body: ok}, {Method: "POST", Path: "/healthz"},
		},
		Cut: 3 * time.Second,
	})

	got := rejected(t, "http://"+addr+"/metrics")
	t.Logf("ning_extender_rejected_requests_total: %v", got)
	for reason, want := range map[string]float64{"too_large": 1, "malformed_json": 8, "method_not_allowed": 3, "unknown_path": 1} {
		if got[reason] < want {
			t.Errorf("ning_extender_rejected_requests_total{reason=%q} = %v, want at least %v", reason, got[reason], want)
		}
	}
}

// rejected reads ning_extender_rejected_requests_total by reason from a
// /metrics endpoint.
func rejected(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, m := range mfs["ning_extender_rejected_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "reason" {
				out[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}
