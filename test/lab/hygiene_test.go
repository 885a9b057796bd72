package lab_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ning-edge/ning/internal/lab"
	"github.com/ning-edge/ning/internal/logging/logtest"
)

// startUp starts `ning lab up` without waiting for it.
func (e *env) startUp(t *testing.T, upArgs []string) (*exec.Cmd, *logtest.Buffer, <-chan error) {
	t.Helper()
	cmd := exec.Command(e.ningBin, append([]string{"lab"}, upArgs...)...)
	cmd.Dir = "../.."
	out := &logtest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, out, done
}

// waitUntil polls cond every 250 ms until it holds, up returns, or timeout.
func waitUntil(t *testing.T, what string, timeout time.Duration, done <-chan error, out *logtest.Buffer, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case err := <-done:
			t.Fatalf("ning lab up returned (%v) before %s:\n%s", err, what, out)
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s:\n%s", what, timeout, out)
		}
	}
}

// kubelets counts the lab's running kubelets (the daemon reports its
// processes only once the lab is up).
func kubelets(ctx context.Context) int {
	n := 0
	for _, l := range lab.Leftovers(ctx) {
		if strings.HasPrefix(l, "process ") && strings.Contains(l, "/kubelet --config=") {
			n++
		}
	}
	return n
}

// testInterrupt sends Ctrl-C (SIGINT) to `ning lab up` while the nodes
// start, and checks that nothing of the lab is left.
func (e *env) testInterrupt(t *testing.T, upArgs []string) {
	ctx := t.Context()
	cmd, out, done := e.startUp(t, upArgs)
	waitUntil(t, "kubelet", 2*time.Minute, done, out, func() bool { return kubelets(ctx) > 0 })
	t0 := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Logf("ning lab up returned %s after Ctrl-C (%v); its last lines:\n%s", time.Since(t0).Round(100*time.Millisecond), err, tail(out.String(), 12))
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("ning lab up still running 2 minutes after Ctrl-C:\n%s", out)
	}
	if !strings.Contains(out.String(), "interrupted: tearing the lab down") {
		t.Errorf("ning lab up did not say it tore the lab down after Ctrl-C")
	}
	if left := lab.Leftovers(ctx); len(left) > 0 {
		t.Errorf("left after Ctrl-C of ning lab up:\n%s", strings.Join(left, "\n"))
	}
}

// testKill9 kills the lab daemon with SIGKILL once pods are starting, so
// that nothing of the lab gets to clean up, and returns the lab's processes
// left running (pid -> /proc cmdline), which the next `ning lab up` must
// remove.
func (e *env) testKill9(t *testing.T, upArgs []string) map[int]string {
	ctx := t.Context()
	_, out, done := e.startUp(t, upArgs)
	all := len(e.spec.Sites)
	waitUntil(t, "kubelet on every site", 2*time.Minute, done, out, func() bool { return kubelets(ctx) == all })
	// Until a pod sandbox exists (containerd state, a pod namespace, the
	// kubelet's mounts), or for at most a minute.
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && !strings.Contains(strings.Join(lab.Leftovers(ctx), "\n"), "pod network namespace") {
		time.Sleep(500 * time.Millisecond)
	}
	b, err := os.ReadFile(lab.RunDir + "/lab.pid")
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Logf("ning lab up after kill -9 of the daemon (pid %d): %v", pid, err)
	case <-time.After(time.Minute):
		t.Fatalf("ning lab up still running a minute after its daemon was killed:\n%s", out)
	}
	left := lab.Leftovers(ctx)
	t.Logf("left by the killed lab (%d):\n%s", len(left), strings.Join(left, "\n"))
	procs := map[int]string{}
	for _, l := range left {
		var p int
		if _, err := fmt.Sscanf(l, "process %d ", &p); err == nil {
			if c, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p)); err == nil {
				procs[p] = string(c)
			}
		}
	}
	// Otherwise the next lab-up's cleaning would prove nothing.
	if len(procs) == 0 || !strings.Contains(strings.Join(left, "\n"), "network namespace") {
		t.Fatalf("the killed lab left no processes or namespaces: the check proves nothing")
	}
	return procs
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
