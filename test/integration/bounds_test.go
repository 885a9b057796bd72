package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ning-edge/ning/internal/testcluster"
)

// chartLimitExtender is the extender's memory limit in the chart
// (deploy/helm/ning/values.yaml, extender.resources.limits.memory).
const chartLimitExtender = 512 << 20

// TestExtenderUnderAttack runs the real `ning extender` binary against a real
// apiserver and sends it the requests of issue 18's first two findings:
// /prioritize listing 25,000 and 8,000 whole unlabelled nodes (each would be
// a site of its own), a 200 KB delay label with 2,000 nodes, and 100 parallel
// 800 KB requests. It checks the answers and that the process's peak RSS
// (VmHWM) stays below the chart's 512Mi limit.
func TestExtenderUnderAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ning binary: skipped in -short (make test-integration runs it)")
	}
	bin := buildNing(t)
	cp := testcluster.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, n := range []testcluster.Node{{Name: "a-0", Site: "a"}, {Name: "b-0", Site: "b"}, {Name: "c-0", Site: "c"}} {
		if _, err := testcluster.CreateReadyNode(ctx, cp.Client, n); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(file, []byte("sites:\n  - {name: a, traffic: 5}\n  - {name: b, traffic: 10}\n  - {name: c, traffic: 200}\nlatencyMs:\n  a: {b: 10, c: 40}\n  b: {c: 30}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd, logs := startNing(t, bin, "extender", "--listen", addr, "--kubeconfig", cp.Kubeconfig, "--latency-file", file, "--log-level", "warn")
	base := "http://" + addr
	waitHealthy(t, base+"/healthz")

	post := func(path string, body []byte) (int, []byte) {
		resp, err := http.Post(base+path, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Errorf("POST %s: %v", path, err)
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	// 25,000 whole nodes with distinct names and no site label: 413.
	body := wholeNodes(`{"metadata":{"name":"p","namespace":"default","uid":"u1"}}`, 25_000, 0)
	code, reply := post("/prioritize", body)
	t.Logf("/prioritize, 25,000 unlabelled nodes (%d KB): %d %q", len(body)>>10, code, bytes.TrimSpace(reply))
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(string(reply), "25000 nodes, over the limit of 10000") {
		t.Errorf("25,000 nodes: %d %s, want 413 naming the limit", code, reply)
	}

	// 8,000: answered, one score per node; the unknown nodes add no sites.
	body = wholeNodes(`{"metadata":{"name":"p","namespace":"default","uid":"u2"}}`, 8_000, 0)
	start := time.Now()
	code, reply = post("/prioritize", body)
	var scores []struct{ Host string }
	if err := json.Unmarshal(reply, &scores); code != http.StatusOK || err != nil || len(scores) != 8_000 {
		t.Errorf("8,000 nodes: %d, %d scores (%v), want 200 and 8,000", code, len(scores), err)
	}
	t.Logf("/prioritize, 8,000 unlabelled nodes (%d KB): %d in %s", len(body)>>10, code, time.Since(start).Round(time.Millisecond))

	// A 200 KB delay label with 2,000 nodes: every node fails with one
	// short reason, not the label copied 2,000 times.
	pod := fmt.Sprintf(`{"metadata":{"name":"p","namespace":"default","uid":"u3","labels":{"delay_a":%q}}}`, strings.Repeat("9", 200<<10))
	body = wholeNodes(pod, 2_000, 0)
	code, reply = post("/filter", body)
	var res struct {
		FailedAndUnresolvableNodes map[string]string
	}
	if err := json.Unmarshal(reply, &res); code != http.StatusOK || err != nil {
		t.Fatalf("200 KB label: %d (%v) %.300s", code, err, reply)
	}
	want := `pod label "delay_a" is 204807 bytes (key and value), over the 400-byte limit`
	if len(res.FailedAndUnresolvableNodes) != 2_000 || res.FailedAndUnresolvableNodes["n-00000"] != want {
		t.Errorf("200 KB label: %d nodes failed, n-00000's reason %q; want 2,000 and %q", len(res.FailedAndUnresolvableNodes), res.FailedAndUnresolvableNodes["n-00000"], want)
	}
	if len(reply) > 300<<10 {
		t.Errorf("200 KB label x 2,000 nodes: a %d-byte reply, want under 300 KB", len(reply))
	}
	t.Logf("/filter, 200 KB label x 2,000 nodes (%d KB): %d, a %d KB reply", len(body)>>10, code, len(reply)>>10)

	// 100 parallel 800 KB requests: some answered, the rest 429.
	body = wholeNodes(`{"metadata":{"name":"p","namespace":"default","uid":"u4"}}`, 8_000, 70)
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := post("/prioritize", body)
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("100 parallel %d KB /prioritize: status codes %v", len(body)>>10, codes)
	if codes[http.StatusTooManyRequests] == 0 || codes[http.StatusOK] == 0 || codes[http.StatusOK]+codes[http.StatusTooManyRequests] != 100 {
		t.Errorf("100 parallel requests: codes %v, want 200s and 429s only, some of each", codes)
	}

	// Every refusal counted.
	m := scrape(t, base+"/metrics")
	for _, c := range []struct {
		metric, reason string
		want           float64
	}{
		{"ning_extender_rejected_requests_total", "too_many_nodes", 1},
		{"ning_extender_rejected_requests_total", "in_flight", float64(codes[http.StatusTooManyRequests])},
		{"ning_extender_bounded_requests_total", "label_too_long", 1},
	} {
		if got := m[c.metric+"/"+c.reason]; got != c.want {
			t.Errorf("%s{reason=%q} = %v, want %v", c.metric, c.reason, got, c.want)
		}
	}
	if n := strings.Count(logs.String(), "reason=in_flight"); n != 1 {
		t.Errorf("the in_flight refusals were logged %d times, want once (one source, one interval)", n)
	}

	hwm := peakRSS(t, cmd.Process.Pid)
	t.Logf("extender peak RSS (VmHWM): %.1f MiB (chart limit 512 MiB)", float64(hwm)/(1<<20))
	if hwm >= chartLimitExtender {
		t.Errorf("peak RSS %d MiB, at or over the chart's 512 MiB limit", hwm>>20)
	}
}

// wholeNodes returns ExtenderArgs JSON for pod with n whole Nodes named
// n-00000... (padded to pad more bytes each), without a site label.
func wholeNodes(pod string, n, pad int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"Pod":%s,"Nodes":{"items":[`, pod)
	suffix := strings.Repeat("x", pad)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"metadata":{"name":"n-%05d%s"}}`, i, suffix)
	}
	b.WriteString(`]}}`)
	return b.Bytes()
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func waitHealthy(t *testing.T, url string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		resp, err := http.Get(url)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("%s never answered 200: %v", url, err)
	}
}

// scrape reads a /metrics page into "name/reason" -> value (the reason label's
// value, empty without one), summed over the other labels.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			reason := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					reason = l.GetValue()
				}
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			out[name+"/"+reason] += v
		}
	}
	return out
}

// peakRSS returns a process's peak resident set size (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) uint64 {
	t.Helper()
	return procStatus(t, pid).VmHWM
}

// procStatus reads a process's /proc/PID/status.
func procStatus(t *testing.T, pid int) procfs.ProcStatus {
	t.Helper()
	p, err := procfs.NewProc(pid)
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.NewStatus()
	if err != nil {
		t.Fatal(err)
	}
	return st
}
