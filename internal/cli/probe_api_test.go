package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/testcluster"
)

func createNode(ctx context.Context, t *testing.T, c kubernetes.Interface, name, site, ip string, labels map[string]string) {
	t.Helper()
	n, err := testcluster.CreateReadyNode(ctx, c, testcluster.Node{Name: name, Site: site, Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	if ip == "" {
		return
	}
	n.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: ip}, {Type: v1.NodeHostName, Address: name}}
	if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestProbeTargetsFromAPI runs ning probe --once --targets-from-api against a
// real kube-apiserver: nodes on loopback addresses, probed by TCP connect to
// a listening port.
func TestProbeTargetsFromAPI(t *testing.T) {
	cp := testcluster.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	for _, n := range []struct{ name, site, ip string }{
		{"home-1", "home", "127.0.0.1"},
		{"home-2", "home", "127.0.0.2"},
		{"east-1", "east", "127.0.1.1"},
		{"east-2", "east", "127.0.1.2"},
		{"west-1", "west", "127.0.2.1"},
		{"loner", "", "127.0.3.1"}, // no zone label: a site of its own
		{"no-ip", "north", ""},     // no InternalIP: skipped
	} {
		createNode(ctx, t, cp.Client, n.name, n.site, n.ip, map[string]string{"ning.io/rack": "r-" + n.name})
	}

	tests := []struct {
		name      string
		mutate    func(*probeOptions)
		wantSite  string
		wantNodes []string // site/node of the targets
	}{
		{name: "one per site, own site from the node's label", wantSite: "home",
			wantNodes: []string{"east/east-1", "loner/loner", "west/west-1"}},
		{name: "every node", mutate: func(o *probeOptions) { o.allNodes = true }, wantSite: "home",
			wantNodes: []string{"east/east-1", "east/east-2", "loner/loner", "west/west-1"}},
		{name: "explicit site", mutate: func(o *probeOptions) { o.site = "east" }, wantSite: "east",
			wantNodes: []string{"home/home-1", "loner/loner", "west/west-1"}},
		{name: "another site label", mutate: func(o *probeOptions) { o.siteLabel = "ning.io/rack" }, wantSite: "r-home-1",
			wantNodes: []string{"r-east-1/east-1", "r-east-2/east-2", "r-home-2/home-2", "r-loner/loner", "r-west-1/west-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := probeOptions{node: "home-1", fromAPI: true, kubeconfig: cp.Kubeconfig, siteLabel: v1.LabelTopologyZone,
				count: 2, interval: 10 * time.Millisecond, timeout: 500 * time.Millisecond, methods: "tcp", tcpPort: port,
				once: true, output: "json", period: time.Second, procRoot: "/proc", logLevel: "error"}
			if tt.mutate != nil {
				tt.mutate(&o)
			}
			var out bytes.Buffer
			if err := runProbe(ctx, &out, o); err != nil {
				t.Fatal(err)
			}
			var r ningv1.LatencyReport
			if err := protojson.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("decoding: %v\n%s", err, out.String())
			}
			if r.GetSourceSite() != tt.wantSite {
				t.Errorf("source site %q, want %q", r.GetSourceSite(), tt.wantSite)
			}
			var got []string
			for _, tr := range r.GetTargets() {
				got = append(got, tr.GetSite()+"/"+tr.GetNode())
				if tr.GetReceived() != 2 || tr.GetMethod() != ningv1.ProbeMethod_PROBE_METHOD_TCP_CONNECT {
					t.Errorf("target %s at %s: %d/%d by %s (%s)", tr.GetNode(), tr.GetAddress(), tr.GetReceived(), tr.GetSent(), tr.GetMethod(), tr.GetError())
				}
				if want := "127.0."; len(tr.GetAddress()) < len(want) || tr.GetAddress()[:len(want)] != want {
					t.Errorf("target %s: address %q is not its InternalIP", tr.GetNode(), tr.GetAddress())
				}
			}
			sort.Strings(got)
			if d := cmp.Diff(tt.wantNodes, got); d != "" {
				t.Errorf("targets (-want +got):\n%s", d)
			}
		})
	}

	t.Run("flag errors", func(t *testing.T) {
		base := probeOptions{node: "home-1", fromAPI: true, kubeconfig: cp.Kubeconfig, count: 1, interval: time.Millisecond,
			timeout: time.Millisecond, methods: "tcp", once: true, output: "json", period: time.Second, logLevel: "error"}
		for name, mutate := range map[string]func(*probeOptions){
			"unknown node, no site": func(o *probeOptions) { o.node = "ghost" },
			"mixed with --target":   func(o *probeOptions) { o.targets = []string{"x=127.0.0.1"} },
			"--all-nodes without api": func(o *probeOptions) {
				o.fromAPI, o.allNodes, o.site, o.targets = false, true, "home", []string{"x=127.0.0.1"}
			},
			"unreadable kubeconfig":    func(o *probeOptions) { o.kubeconfig = "/nonexistent/kubeconfig" },
			"apiserver gone (timeout)": func(o *probeOptions) { o.kubeconfig = writeKubeconfigTo(t, "https://127.0.0.1:1") },
		} {
			t.Run(name, func(t *testing.T) {
				o := base
				mutate(&o)
				if err := runProbe(ctx, io.Discard, o); err == nil {
					t.Error("accepted")
				}
			})
		}
	})
}

// writeKubeconfigTo writes a kubeconfig pointing at server.
func writeKubeconfigTo(t *testing.T, server string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`, server)
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
