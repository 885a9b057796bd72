package source

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/broker"
	"github.com/ning-edge/ning/internal/broker/brokertest"
	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/probe"
	"github.com/ning-edge/ning/internal/testcluster"
	"github.com/ning-edge/ning/internal/topology"
)

func sourceNode(name, site, ip string) *v1.Node {
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"zone": site}},
		Status:     v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: ip}}},
	}
}

// checkAll is a Goldpinger /check_all answer: the pods on a-1 and b-1
// measured each other at 12 and 14 ms.
const checkAll = `{"OK": true,
  "hosts": [{"podName": "gp-a", "hostIP": "10.0.0.1", "podIP": "172.16.0.1"},
            {"podName": "gp-b", "hostIP": "10.0.1.1", "podIP": "172.16.1.1"}],
  "responses": {
    "172.16.0.1": {"OK": true, "HostIP": "10.0.0.1", "response": {"podResults": {
      "172.16.1.1": {"OK": true, "HostIP": "10.0.1.1", "status-code": 200, "response-time-ms": 12}}}},
    "172.16.1.1": {"OK": true, "HostIP": "10.0.1.1", "response": {"podResults": {
      "172.16.0.1": {"OK": true, "HostIP": "10.0.0.1", "status-code": 200, "response-time-ms": 14}}}}}}`

// TestStartFeedsStore feeds one store from every source at once, each a real loopback server: a
// latency file (c <-> d), a Goldpinger (a <-> b), a prober's /scores served
// by `ning probe`'s own handler (a -> c, and a -> e once node e-1 joins), and
// the embedded MQTT broker holding a retained LatencyReport (b -> c).
func TestStartFeedsStore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	file := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(file, []byte("sites: [{name: a}, {name: b}, {name: c}, {name: d}]\nlatencyMs: {c: {d: 77}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, checkAll)
	}))
	defer gp.Close()
	scores := probe.NewScores("a-1", 1)
	scores.Update(&ningv1.LatencyReport{SourceSite: "a", SourceNode: "a-1", Targets: []*ningv1.TargetResult{
		{Site: "c", Node: "c-1", Address: "10.0.2.1", Sent: 3, Received: 3, AvgMs: 40},
		{Site: "e", Node: "e-1", Address: "10.0.4.1", Sent: 3, Received: 3, AvgMs: 60},
	}})
	prober := httptest.NewServer(scores)
	defer prober.Close()
	b := brokertest.Start(t, broker.Config{Listen: "127.0.0.1:0", AllowAnonymous: true, Inline: true}, log)
	report, err := proto.Marshal(&ningv1.LatencyReport{SourceSite: "b", SourceNode: "b-1", Time: timestamppb.Now(),
		Method:  ningv1.ProbeMethod_PROBE_METHOD_ICMP_RAW,
		Targets: []*ningv1.TargetResult{{Site: "c", Node: "c-1", Sent: 2, Received: 2, RttMs: []float64{24, 26}, MinMs: 24, AvgMs: 25, MaxMs: 26}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Server().Publish(mqtt.TopicLatencyPrefix+"b", report, true, 1); err != nil {
		t.Fatal(err)
	}

	client := testcluster.Start(t).Client
	for _, n := range []*v1.Node{sourceNode("a-1", "a", "10.0.0.1"), sourceNode("b-1", "b", "10.0.1.1"), sourceNode("c-1", "c", "10.0.2.1")} {
		if _, err := client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	store := topology.NewStore(topology.Config{TTL: time.Hour}, clock.RealClock{})
	reg := prometheus.NewRegistry()
	stop, err := Start(ctx, Sources{LatencyFile: file, GoldpingerURL: gp.URL + "/check_all",
		ScoresURLs: []string{prober.URL + "/scores"}, MQTT: &mqtt.Config{BrokerURL: "mqtt://" + b.Addr()},
		PollInterval: 20 * time.Millisecond, SiteLabel: "zone", Client: client, Registerer: reg, Log: log}, store)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	want := map[[2]string]float64{{"c", "d"}: 77, {"a", "b"}: 12, {"b", "a"}: 14, {"a", "c"}: 40, {"b", "c"}: 25}
	waitRTTs(ctx, t, store, want)

	// A node that joins later is mapped by the next poll.
	if _, err := client.CoreV1().Nodes().Create(ctx, sourceNode("e-1", "e", "10.0.4.1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRTTs(ctx, t, store, map[[2]string]float64{{"a", "e"}: 60})

	if n, err := testutil.GatherAndCount(reg, "ning_reports_accepted_total", "ning_mqtt_connected"); err != nil || n == 0 {
		t.Errorf("the sources' metrics are not on the registry given: %d series, %v", n, err)
	}
}

func waitRTTs(ctx context.Context, t *testing.T, store *topology.Store, want map[[2]string]float64) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		for k, ms := range want {
			if got, ok := store.RTT(k[0], k[1]); !ok || got != ms {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		for k, ms := range want {
			got, ok := store.RTT(k[0], k[1])
			t.Errorf("%s -> %s: %v ms (known %v), want %v", k[0], k[1], got, ok, ms)
		}
		t.Fatal(err)
	}
}

// TestStartRejectsBadAnswers points the polled sources at servers that
// answer garbage: each poll is counted in ning_reports_rejected_total by
// reason and nothing reaches the store.
func TestStartRejectsBadAnswers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/check_all" {
			_, _ = io.WriteString(w, `{"OK": true, "responses": [`)
			return
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer bad.Close()
	store := topology.NewStore(topology.Config{}, clock.RealClock{})
	reg := prometheus.NewRegistry()
	stop, err := Start(ctx, Sources{GoldpingerURL: bad.URL + "/check_all", ScoresURLs: []string{bad.URL + "/scores"},
		PollInterval: 20 * time.Millisecond, SiteLabel: "zone", Client: testcluster.Start(t).Client, Registerer: reg}, store)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		undecodable, fetch := rejected(t, reg, "undecodable"), rejected(t, reg, "fetch")
		return undecodable >= 2 && fetch >= 2, nil
	})
	if err != nil {
		t.Fatalf("rejections: undecodable %v, fetch %v: %v", rejected(t, reg, "undecodable"), rejected(t, reg, "fetch"), err)
	}
	if store.Version() != 0 {
		t.Error("a rejected answer changed the store")
	}
}

func rejected(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != "ning_reports_rejected_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestStartErrors: a latency file ning cannot use, and the polled sources
// without the API, stop the start with an error naming the flag.
func TestStartErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    Sources
		want string
	}{
		{name: "missing latency file", s: Sources{LatencyFile: "/nonexistent/topology.yaml"}, want: "--latency-file: latency file: open /nonexistent/topology.yaml"},
		{name: "polled without the API", s: Sources{ScoresURLs: []string{"http://p:9810/scores"}}, want: "need the Kubernetes API"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := topology.NewStore(topology.Config{}, clock.RealClock{})
			_, err := Start(t.Context(), tt.s, store)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
