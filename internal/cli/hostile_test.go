package cli

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/ning-edge/ning/internal/httpserve/hostiletest"
)

// defaultCut bounds a slow client against a command's server with
// httpserve's default timeouts (10 s to read a request), with slack.
const defaultCut = 12 * time.Second

// TestProbeHostileClients runs `ning probe` serving /healthz, /metrics and
// /scores as deployed (default timeouts) and throws the hostile clients at
// it; /scores must still answer afterwards. The slowloris client waits out
// the 5 s header timeout, so the test takes about 5 s.
func TestProbeHostileClients(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	brokerAddr, addr := freeAddr(t), freeAddr(t)
	brokerDone := make(chan error, 1)
	go func() {
		brokerDone <- runBroker(ctx, brokerOptions{listen: brokerAddr, allowAnonymous: true, logLevel: "error"})
	}()
	probeDone := make(chan error, 1)
	go func() {
		probeDone <- runProbe(ctx, io.Discard, probeOptions{
			site: "home", node: "n1", targets: []string{"lo/lo-1=127.0.0.1:" + strconv.Itoa(udpEcho(t))},
			count: 3, interval: 10 * time.Millisecond, timeout: 200 * time.Millisecond, methods: "udp",
			period: 100 * time.Millisecond, jitter: 0.2, listen: addr, procRoot: "/proc", queueSize: 10, logLevel: "error",
			mqtt: mqttFlags{url: "mqtt://" + brokerAddr},
		})
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, err := get(ctx, "http://"+addr+"/scores"); err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ning probe never served /scores")
		}
	}
	hostiletest.Run(t, hostiletest.Target{
		Addr: addr, OK: hostiletest.Request{Method: "GET", Path: "/scores"},
		WrongMethods: []hostiletest.Request{
			{Method: "POST", Path: "/scores", Body: "{}"}, {Method: "DELETE", Path: "/healthz"}, {Method: "PUT", Path: "/metrics", Body: "x"},
		},
		Cut: defaultCut,
	})
	cancel()
	waitStopped(t, probeDone, brokerDone)
}

// waitStopped waits for each command's result and fails the test on an
// error or a command still running after 10 s.
func waitStopped(t *testing.T, done ...chan error) {
	t.Helper()
	for _, ch := range done {
		select {
		case err := <-ch:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("command did not stop")
		}
	}
}
