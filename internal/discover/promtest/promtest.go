// Package promtest starts a real Prometheus server (the prometheus binary,
// Debian's package 2.42 on this machine) for tests, scraping a target the
// test serves.
package promtest

import (
	"sync"

	"context"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BinaryEnv overrides the prometheus binary path.
const BinaryEnv = "NING_PROMETHEUS"

// Binary returns the prometheus binary, or "" when there is none.
func Binary() string {
	if b := os.Getenv(BinaryEnv); b != "" {
		return b
	}
	for _, p := range []string{"/usr/bin/prometheus", "/usr/local/bin/prometheus"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	return ""
}

// Server is a running Prometheus.
type Server struct {
	// URL is http://127.0.0.1:PORT.
	URL string
	cmd *exec.Cmd
}

// Kill stops Prometheus at once (SIGKILL) and waits for it to exit: the
// fault of a Prometheus that goes away mid-run.
func (s *Server) Kill() error {
	if err := s.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("killing prometheus: %w", err)
	}
	_ = s.cmd.Wait()
	return nil
}

// Start runs Prometheus on 127.0.0.1 with a 1 s scrape interval against the
// given host:port targets (path /metrics), with a temporary config and
// storage directory, stopped when the test ends. It skips the test when no
// prometheus binary is installed.
func Start(t testing.TB, targets ...string) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		t.Skip("prometheus binary not found: apt-get install -y prometheus (or set " + BinaryEnv + ")")
	}
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = fmt.Sprintf("%q", tg)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
scrape_configs:
  - job_name: gateway
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", "))
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait() // after Kill, an error saying so
		_ = logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	s := &Server{URL: "http://" + addr, cmd: cmd}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus at %s not ready after 30s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Flow is requests at a steady rate entering one node's entrypoint.
type Flow struct {
	Node, Entrypoint string
	RPS              float64
}

// ServeGateway serves traefik_entrypoint_requests_total{entrypoint,node}
// counters on /metrics, like Traefik's endpoint, growing at each flow's rate
// (a goroutine adds RPS × elapsed time every 10 ms) until the test ends. It
// returns the host:port to scrape.
func ServeGateway(t testing.TB, flows []Flow) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "traefik_entrypoint_requests_total", Help: "requests"}, []string{"entrypoint", "node"})
	reg.MustRegister(c)
	for _, f := range flows {
		c.WithLabelValues(f.Entrypoint, f.Node).Add(0)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		added := make([]float64, len(flows))
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tk.C:
				el := now.Sub(start).Seconds()
				for i, f := range flows {
					// A tick's time can precede the last one's by a hair.
					if want := f.RPS * el; want > added[i] {
						c.WithLabelValues(f.Entrypoint, f.Node).Add(want - added[i])
						added[i] = want
					}
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = srv.Close()
	})
	return ln.Addr().String()
}
