package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ning-edge/ning/internal/demo"
	"github.com/ning-edge/ning/internal/demo/netns"
	"github.com/ning-edge/ning/internal/netem/netemtest"
)

// Bounds on the demo's measured RTTs against the topology (the summary's
// measuredRTT): the helper's probers on a quiet machine read within a few
// tenths of a millisecond, a loaded two-CPU machine adds up to 1.5 ms to
// single pairs.
const (
	demoNetnsMeanAbsMs = 1.2
	demoNetnsMaxAbsMs  = 3.0
)

// TestDemoNetns runs `ning demo --netns` (the binary, as root) on the
// built-in topology: real probers in seven network namespaces over 21
// delayed links. It checks the summary (ning against the default scheduler,
// convergence, recovery), that the store's RTTs match the topology, and that
// no namespace or helper process is left; then it interrupts a second run
// with SIGINT (Ctrl-C) during the scenario and checks the same clean-up. It
// needs root, iproute2, iptables and NFQUEUE; without them it skips (it fails
// when NING_REQUIRE_NETNS=1, as in make test-netns).
func TestDemoNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo twice (about 70 s): skipped in -short (make test-netns runs it, as root)")
	}
	if err := netns.Check(); err != nil {
		netemtest.Skip(t, "demo --netns skipped: %v", err)
	}
	bin := buildNing(t)
	netemtest.LockForTiming(t)

	t.Run("full", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
		defer cancel()
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, "demo", "--netns", "-o", "json")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		pid := cmd.Process.Pid
		if err != nil {
			if strings.Contains(stderr.String(), "NFQUEUE") {
				netemtest.Skip(t, "demo --netns skipped: %s", stderr.String())
			}
			t.Fatalf("ning demo --netns: %v\n%s", err, stderr.String())
		}
		var sum demo.Summary
		if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
			t.Fatalf("decoding the summary: %v\n%s", err, stdout.String())
		}
		p := sum.Probes
		if p == nil {
			t.Fatalf("no measuredRTT in the summary:\n%s", stdout.String())
		}
		t.Logf("measured RTT (%s probers) vs topology: %d pairs, mean %+.2f ms, mean |diff| %.2f ms, worst %s %.2f ms for %.0f ms",
			p.Probers, p.Pairs, p.MeanDiffMs, p.MeanAbsDiffMs, p.Worst, p.WorstMeasuredMs, p.WorstTopologyMs)
		if p.Probers != "netns" || p.Pairs != 42 {
			t.Errorf("probers %q over %d pairs, want netns over 42 (7 sites)", p.Probers, p.Pairs)
		}
		if p.MeanAbsDiffMs > demoNetnsMeanAbsMs || p.MaxAbsDiffMs > demoNetnsMaxAbsMs {
			t.Errorf("measured RTTs off the topology by %.2f ms on average, %.2f ms at worst; want at most %.1f and %.1f",
				p.MeanAbsDiffMs, p.MaxAbsDiffMs, demoNetnsMeanAbsMs, demoNetnsMaxAbsMs)
		}
		if sum.After.NingMs > sum.After.DefaultMs || !sum.Converged || !sum.Recovered {
			t.Errorf("after the shift ning %.2f ms, default %.2f ms; converged %v, recovered %v",
				sum.After.NingMs, sum.After.DefaultMs, sum.Converged, sum.Recovered)
		}
		checkNoLeftovers(t, bin, pid)
	})

	t.Run("interrupted", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "demo", "--netns")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		sc := bufio.NewScanner(out)
		for sc.Scan() && !strings.HasPrefix(sc.Text(), "ning demo:") {
		}
		if n := len(namespaces(t, pid)); n != 7 {
			t.Errorf("%d namespaces of the demo while it runs, want 7", n)
		}
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		for sc.Scan() {
		}
		err = cmd.Wait()
		t.Logf("interrupted demo exited: %v", err)
		if err == nil {
			t.Errorf("the interrupted demo exited 0")
		}
		if strings.Contains(stderr.String(), "removing the network namespaces") || strings.Contains(stderr.String(), "did not stop") {
			t.Errorf("clean-up reported an error:\n%s", stderr.String())
		}
		checkNoLeftovers(t, bin, pid)
	})
}

// namespaces lists the network namespaces a demo process created.
func namespaces(t *testing.T, pid int) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("/var/run/netns", netns.NamespacePrefix(pid)+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// checkNoLeftovers fails when a demo's namespaces or a helper process of bin
// remain.
func checkNoLeftovers(t *testing.T, bin string, pid int) {
	t.Helper()
	if left := namespaces(t, pid); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.HasPrefix(b, []byte(bin+"\x00demo\x00netns-lab")) {
			t.Errorf("helper process left behind: %s", p)
		}
	}
}
