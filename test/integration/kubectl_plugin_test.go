package integration

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/ning-edge/ning/internal/dashboard"
	"github.com/ning-edge/ning/internal/testcluster"
)

// TestKubectlPlugin runs the ning binary as kubectl runs a plugin: through a
// symlink named kubectl-ning, with $KUBECONFIG naming two files that kubectl
// would merge. The first holds the current context "dead" (a server that
// refuses connections) and "live" (the real apiserver, no namespace); the
// second "live-lab" (the real apiserver, namespace lab). The ning pods are
// shop/web-0 and lab/solo.
func TestKubectlPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ning binary: skipped in -short (make test-integration runs it)")
	}
	dir := t.TempDir()
	plugin := filepath.Join(dir, "kubectl-ning")
	if err := os.Symlink(buildNing(t), plugin); err != nil {
		t.Fatal(err)
	}
	cp := testcluster.Start(t)
	ctx := t.Context()
	for _, n := range []testcluster.Node{{Name: "a-0", Site: "a"}, {Name: "b-0", Site: "b"}} {
		if _, err := testcluster.CreateReadyNode(ctx, cp.Client, n); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []struct{ ns, name, node string }{{"shop", "web-0", "b-0"}, {"lab", "solo", "a-0"}} {
		if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: p.ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: p.ns},
			Spec: v1.PodSpec{SchedulerName: dashboard.DefaultSchedulerName, NodeName: p.node,
				Containers: []v1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
		}
		if _, err := cp.Client.CoreV1().Pods(p.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	topo := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(topo, []byte("sites:\n  - {name: a, traffic: 90}\n  - {name: b, traffic: 10}\nlatencyMs:\n  a: {b: 12}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kubeconfig := twoKubeconfigs(t, cp.Kubeconfig, dir)

	run := func(args ...string) (string, string, error) {
		cmd := exec.CommandContext(ctx, plugin, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HOME="+dir)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	status := func(args ...string) []string {
		return append([]string{"status", "--latency-file", topo, "--log-level", "warn"}, args...)
	}

	t.Run("help says kubectl ning", func(t *testing.T) {
		out, _, err := run("status", "--help")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"kubectl ning status [--kubeconfig FILE]", "--context string", "-n, --namespace string", "-A, --all-namespaces"} {
			if !strings.Contains(out, want) {
				t.Errorf("help lacks %q:\n%s", want, out)
			}
		}
	})

	tests := []struct {
		name      string
		args      []string
		want, not []string
	}{
		{"--context picks the live cluster; no namespace in it: every namespace", status("--context", "live"),
			[]string{"shop/web-0", "lab/solo"}, nil},
		{"-n shows one namespace", status("--context", "live", "-n", "shop"),
			[]string{"shop/web-0"}, []string{"lab/solo"}},
		{"--namespace, long form", status("--context", "live", "--namespace", "lab"),
			[]string{"lab/solo"}, []string{"shop/web-0"}},
		{"the context's namespace, from the second file of $KUBECONFIG", status("--context", "live-lab"),
			[]string{"lab/solo"}, []string{"shop/web-0"}},
		{"-A overrides the context's namespace", status("--context", "live-lab", "-A"),
			[]string{"shop/web-0", "lab/solo"}, nil},
		{"-n overrides the context's namespace", status("--context", "live-lab", "-n", "shop"),
			[]string{"shop/web-0"}, []string{"lab/solo"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, err := run(tt.args...)
			if err != nil {
				t.Fatalf("%v: %v\n%s%s", tt.args, err, out, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %s:\n%s", w, out)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(out, w) {
					t.Errorf("output shows %s, of another namespace:\n%s", w, out)
				}
			}
		})
	}

	t.Run("--workload NAME in the -n namespace", func(t *testing.T) {
		out, stderr, err := run(status("--context", "live", "-n", "shop", "--workload", "web-0", "-o", "json")...)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		var s dashboard.Snapshot
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("not a snapshot: %v\n%s", err, out)
		}
		if len(s.Workloads) != 1 || s.Workloads[0].Key() != "shop/web-0" {
			t.Errorf("workloads = %+v, want shop/web-0 alone", s.Workloads)
		}
	})

	t.Run("kubectl ning explain, NAME in the context's namespace", func(t *testing.T) {
		out, stderr, err := run("explain", "pod", "solo", "--context", "live-lab", "--latency-file", topo, "--log-level", "warn")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		for _, want := range []string{"pod lab/solo: on node a-0 in site a", "placed: site a (node a-0"} {
			if !strings.Contains(out, want) {
				t.Errorf("explain lacks %q:\n%s", want, out)
			}
		}
		out, _, err = run("explain", "--help")
		if err != nil || !strings.Contains(out, "kubectl ning explain (pod|deployment) NAMESPACE/NAME") {
			t.Errorf("explain --help: %v\n%s", err, out)
		}
	})

	t.Run("without --context the current context is used", func(t *testing.T) {
		_, stderr, err := run(status("--timeout", "2s")...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		last := lines[len(lines)-1]
		if err == nil || !strings.HasPrefix(last, "kubectl ning: ") || !strings.Contains(last, "not listed within --timeout 2s") {
			t.Errorf("against the dead current context: err %v, last line %q; want kubectl ning's timeout error", err, last)
		}
	})

	t.Run("bad flags", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			want string
		}{
			{status("--context", "live", "-n", "shop", "-A"), `--namespace "shop" and --all-namespaces: give one`},
			{status("--context", "nowhere"), `"nowhere"`},
		} {
			_, stderr, err := run(c.args...)
			if err == nil || !strings.Contains(stderr, c.want) {
				t.Errorf("%v: err %v, stderr %q; want %q", c.args, err, stderr, c.want)
			}
		}
	})
}

// twoKubeconfigs writes the two files of TestKubectlPlugin from the control
// plane's kubeconfig and returns them as a $KUBECONFIG list.
func twoKubeconfigs(t *testing.T, from, dir string) string {
	t.Helper()
	base, err := clientcmd.LoadFromFile(from)
	if err != nil {
		t.Fatal(err)
	}
	cur := base.Contexts[base.CurrentContext]
	if cur == nil {
		t.Fatalf("%s has no current context", from)
	}
	// A port nothing listens on: connections to it are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	dead := base.Clusters[cur.Cluster].DeepCopy()
	dead.Server = "https://" + deadAddr
	first := clientcmdapi.NewConfig()
	first.Clusters["live"] = base.Clusters[cur.Cluster]
	first.Clusters["dead"] = dead
	first.AuthInfos["admin"] = base.AuthInfos[cur.AuthInfo]
	first.Contexts["live"] = &clientcmdapi.Context{Cluster: "live", AuthInfo: "admin"}
	first.Contexts["dead"] = &clientcmdapi.Context{Cluster: "dead", AuthInfo: "admin", Namespace: "lab"}
	first.CurrentContext = "dead"
	second := clientcmdapi.NewConfig()
	second.Contexts["live-lab"] = &clientcmdapi.Context{Cluster: "live", AuthInfo: "admin", Namespace: "lab"}
	a, b := filepath.Join(dir, "first.kubeconfig"), filepath.Join(dir, "second.kubeconfig")
	for file, cfg := range map[string]*clientcmdapi.Config{a: first, b: second} {
		if err := clientcmd.WriteToFile(*cfg, file); err != nil {
			t.Fatal(err)
		}
	}
	return a + string(os.PathListSeparator) + b
}
