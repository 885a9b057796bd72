package mqtt

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
)

// mosquittoProc is a broker process this test starts and restarts itself.
type mosquittoProc struct {
	bin, conf, addr, log string
	cmd                  *exec.Cmd
}

func (m *mosquittoProc) start(t *testing.T) {
	t.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	logf, err := os.OpenFile(m.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("starting the broker: %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err := net.Dial("tcp", m.addr); err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the broker did not start listening")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM, so the broker saves its persistence file, and waits.
func (m *mosquittoProc) stop(t *testing.T) {
	t.Helper()
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	_ = m.cmd.Wait()
	m.cmd = nil
}

// TestPublisherMosquittoRestart restarts a real broker process (with persistence,
// as deployed) mid-stream: the publisher queues while it is down, the
// subscriber's persistent session keeps what arrives while it is away, and
// every report arrives.
func TestPublisherMosquittoRestart(t *testing.T) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		t.Skip("mosquitto not installed (apt-get install -y mosquitto): restart test against a real broker skipped")
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	cfg := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"+
		"persistence true\npersistence_location %s/\nmax_queued_messages 5000\nlog_type all\nlog_dest stderr\n", port, dir)
	if os.Geteuid() == 0 {
		// As root the broker switches to its own unprivileged user, which cannot write
		// its persistence file into this test's directory.
		cfg += "user root\n"
	}
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &mosquittoProc{bin: bin, conf: conf, addr: addr, log: filepath.Join(dir, "mosquitto.log")}
	m.start(t)
	defer m.stop(t)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	got := map[string]bool{}
	url := "mqtt://" + addr
	fast := Config{BrokerURL: url, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, ConnectTimeout: time.Second}
	subCfg := fast
	subCfg.ClientID = "ning-restart-test-sub"
	sub, err := NewSubscriber(ctx, subCfg, SubscriberOptions{Topics: []string{TopicLatencyAll}}, func(_ string, payload []byte) {
		var r ningv1.LatencyReport
		if proto.Unmarshal(payload, &r) == nil {
			mu.Lock()
			got[r.GetSourceNode()] = true
			mu.Unlock()
		}
	}, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(context.Background())
	select {
	case <-sub.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("subscriber never subscribed")
	}
	pub, err := NewPublisher(ctx, fast, PublisherOptions{QueueSize: 1000, PublishTimeout: time.Second}, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	publish := func(k int) {
		for range k {
			if err := pub.PublishLatency(report(i)); err != nil {
				t.Fatal(err)
			}
			i++
		}
	}
	publish(50)
	fctx, fcancel := context.WithTimeout(ctx, 20*time.Second)
	defer fcancel()
	if err := pub.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	m.stop(t)
	publish(500) // inside the bound of 1000
	time.Sleep(300 * time.Millisecond)
	m.start(t)
	publish(50)
	if err := pub.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		missing = missing[:0]
		mu.Lock()
		for j := range i {
			if n := fmt.Sprintf("n-%d", j); !got[n] {
				missing = append(missing, n)
			}
		}
		mu.Unlock()
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		logb, _ := os.ReadFile(m.log)
		t.Logf("broker log:\n%s", logb[max(0, len(logb)-4000):])
		t.Fatalf("%d of %d reports lost across the broker restart, e.g. %v", len(missing), i, missing[:min(5, len(missing))])
	}
	t.Logf("all %d reports arrived across a broker restart", i)
	if err := pub.Close(ctx); err != nil {
		t.Error(err)
	}
}
