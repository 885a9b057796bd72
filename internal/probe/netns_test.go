package probe

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
)

// TestNetnsEndToEnd runs the real `ning probe --once` inside a network
// namespace against two other namespaces over veth links, once per method.
// It needs root and iproute2. There is no WAN delay yet: this kernel has no
// sch_netem, and the NFQUEUE userspace delayer DESIGN.md describes is still
// to be written, so only methods and loss are checked, not RTT accuracy.
func TestNetnsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("network-namespace test skipped in -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("network-namespace test needs root: skipped")
	}
	ipBin, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("network-namespace test needs iproute2 (ip): skipped")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("network-namespace test builds the ning binary and needs the go tool: skipped")
	}
	bin := filepath.Join(t.TempDir(), "ning")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/ning").CombinedOutput(); err != nil {
		t.Fatalf("building ning: %v\n%s", err, out)
	}
	suffix := fmt.Sprint(os.Getpid() % 100000)
	ns := func(name string) string { return "ning" + name + suffix }
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipBin, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, n := range []string{"a", "b", "c"} {
		run("netns", "add", ns(n))
		name := ns(n)
		t.Cleanup(func() { _ = exec.Command(ipBin, "netns", "del", name).Run() })
		run("-n", ns(n), "link", "set", "lo", "up")
	}
	// a <-> b on 10.77.1.0/24, a <-> c on 10.77.2.0/24.
	for i, peer := range []string{"b", "c"} {
		va, vp := "va"+peer+suffix, "vp"+peer+suffix
		if len(va) > 15 {
			va, vp = va[:15], vp[:15]
		}
		run("link", "add", va, "netns", ns("a"), "type", "veth", "peer", "name", vp, "netns", ns(peer))
		run("-n", ns("a"), "addr", "add", fmt.Sprintf("10.77.%d.1/24", i+1), "dev", va)
		run("-n", ns(peer), "addr", "add", fmt.Sprintf("10.77.%d.2/24", i+1), "dev", vp)
		run("-n", ns("a"), "link", "set", va, "up")
		run("-n", ns(peer), "link", "set", vp, "up")
	}
	// Unprivileged ICMP needs the group range opened inside the namespace.
	run("netns", "exec", ns("a"), "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")

	tests := []struct {
		methods string
		extra   []string
		want    ningv1.ProbeMethod
	}{
		{methods: "icmp-raw", want: ningv1.ProbeMethod_PROBE_METHOD_ICMP_RAW},
		{methods: "icmp-udp", want: ningv1.ProbeMethod_PROBE_METHOD_ICMP_UDP},
		{methods: "tcp", extra: []string{"--tcp-port", "9"}, want: ningv1.ProbeMethod_PROBE_METHOD_TCP_CONNECT},                        // RST from a closed port
		{methods: "udp,tcp", extra: []string{"--udp-port", "7", "--tcp-port", "9"}, want: ningv1.ProbeMethod_PROBE_METHOD_TCP_CONNECT}, // no echo server: falls back
	}
	for _, tt := range tests {
		t.Run(tt.methods, func(t *testing.T) {
			args := append([]string{"netns", "exec", ns("a"), bin, "probe", "--once", "--site", "a", "--node", "a-1",
				"--target", "b=10.77.1.2", "--target", "c=10.77.2.2", "--methods", tt.methods,
				"--interval", "20ms", "--timeout", "300ms", "-o", "json", "--log-level", "error"}, tt.extra...)
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(ipBin, args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("ning probe: %v\n%s", err, stderr.String())
			}
			var r ningv1.LatencyReport
			if err := protojson.Unmarshal(stdout.Bytes(), &r); err != nil {
				t.Fatalf("decoding: %v\n%s", err, stdout.String())
			}
			for _, tr := range r.GetTargets() {
				t.Logf("%s -> %s: method %s, %d/%d, avg %.3f ms", tt.methods, tr.GetSite(), methodName(tr.GetMethod()), tr.GetReceived(), tr.GetSent(), tr.GetAvgMs())
				if tr.GetMethod() != tt.want || tr.GetReceived() != 5 || tr.GetSent() != 5 {
					t.Errorf("target %s: %v", tr.GetSite(), tr)
				}
			}
		})
	}
}
