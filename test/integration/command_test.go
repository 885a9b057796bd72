package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/logging/logtest"
	"github.com/ning-edge/ning/internal/testcluster"
	"github.com/ning-edge/ning/internal/topology"
)

// buildNing builds the ning binary once per test run.
func buildNing(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ning")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/ning")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building ning: %v\n%s", err, out)
	}
	return bin
}

// startNing starts the ning binary with args (a subcommand first) until the
// test ends, and logs its output (stdout and stderr) if the test failed.
func startNing(t *testing.T, bin string, args ...string) (*exec.Cmd, *logtest.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logtest.Buffer{}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting ning %s: %v", args[0], err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("ning %s output:\n%.20000s", args[0], logs.String())
		}
	})
	return cmd, logs
}

// TestSchedulerCommand runs the `ning scheduler` binary as a user would, with
// no --config (ning's default profile), --kubeconfig and --latency-file, and
// checks that it places a pod where the file's traffic is.
func TestSchedulerCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ning binary: skipped in -short (make test-integration runs it)")
	}
	bin := buildNing(t)
	cp := testcluster.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := &env{cp: cp, c: cp.Client, ctx: ctx, site: map[string]string{},
		store: topology.NewStore(topology.Config{}, clock.RealClock{})}
	for _, n := range []testcluster.Node{{Name: "a-0", Site: "a"}, {Name: "b-0", Site: "b"}, {Name: "c-0", Site: "c"}} {
		if _, err := testcluster.CreateReadyNode(ctx, e.c, n); err != nil {
			t.Fatal(err)
		}
		e.site[n.Name] = n.Site
	}
	file := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(file, []byte(`sites:
  - {name: a, traffic: 5}
  - {name: b, traffic: 10}
  - {name: c, traffic: 200}
latencyMs:
  a: {b: 10, c: 40}
  b: {c: 30}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	startNing(t, bin, "scheduler", "--kubeconfig", cp.Kubeconfig, "--latency-file", file,
		"--leader-elect=false", "--secure-port=0", "-v=1")
	ns := e.namespace(t)
	e.createPod(t, ns, "p", nil, nil)
	if got := e.waitSite(t, ns, "p"); got != "c" {
		t.Fatalf("site = %s, want c (most traffic in the file)", got)
	}
	e.createPod(t, ns, "q", map[string]string{"delay_a": "15"}, nil)
	if got := e.waitSite(t, ns, "q"); got != "b" {
		t.Fatalf("site = %s, want b (within 15 ms of a, nearer the traffic)", got)
	}
}
