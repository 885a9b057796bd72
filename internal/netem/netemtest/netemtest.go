// Package netemtest holds the test helpers for tests that build a netem.Lab:
// skips that turn into failures under NING_REQUIRE_NETNS=1, and the
// cross-process timing lock. Production code uses package netem only.
package netemtest

import (
	"os"
	"os/exec"
	"strconv"

	"github.com/ning-edge/ning/internal/netem"
)

// RequireEnv names the environment variable that, set to 1 (CI does), turns
// the network-namespace tests' skips into failures, so a CI run cannot pass
// without running them.
const RequireEnv = "NING_REQUIRE_NETNS"

// Skip skips t with the reason, or fails it when RequireEnv is set.
func Skip(t interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}, format string, args ...any) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf(format+" ("+RequireEnv+"=1: required)", args...)
	}
	t.Skipf(format, args...)
}

// RequireBuildLab skips t (or fails it when RequireEnv is set) unless this
// process can build a Lab and the ning binary: root, ip, iptables and the go
// tool. what names the test in the message.
func RequireBuildLab(t interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "%s needs root (network namespaces): skipped", what)
	}
	if _, _, err := netem.Tools(); err != nil {
		Skip(t, "%s skipped: %v", what, err)
	}
	if _, err := exec.LookPath("go"); err != nil {
		Skip(t, "%s builds the ning binary and needs the go tool: skipped", what)
	}
}

// LockForTiming is Exclusive for a test: it fails the test when the lock
// cannot be taken and releases it when the test ends.
func LockForTiming(t interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}) {
	t.Helper()
	release, err := netem.Exclusive()
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(release)
}

// SeedEnv names the environment variable that sets a lab's delayer seed, to
// repeat the loss and jitter pattern of an earlier run.
const SeedEnv = "NING_NETEM_SEED"

// Seed sets lab's seed from SeedEnv when it is set, and logs the seed in use
// either way, so that a failure can be repeated.
func Seed(t interface {
	Helper()
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
}, lab *netem.Lab) {
	t.Helper()
	if v := os.Getenv(SeedEnv); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want an unsigned integer: %v", SeedEnv, v, err)
		}
		lab.SetSeed(seed)
	}
	t.Logf("delayer seed %d (%s=%d repeats this run's loss and jitter)", lab.Seed(), SeedEnv, lab.Seed())
}
