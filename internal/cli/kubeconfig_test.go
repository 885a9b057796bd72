package cli

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func TestNewRootFor(t *testing.T) {
	for argv0, want := range map[string]string{
		"ning":                        "ning",
		"/usr/local/bin/ning":         "ning",
		"/usr/local/bin/kubectl-ning": "kubectl ning",
		"kubectl-ning.exe":            "kubectl ning",
		"kubectl-ning-old":            "ning",
	} {
		root := NewRootFor(argv0)
		status, _, err := root.Find([]string{"status"})
		if err != nil {
			t.Fatal(err)
		}
		if got := status.CommandPath(); got != want+" status" {
			t.Errorf("started as %s: `status` is %q, want %q", argv0, got, want+" status")
		}
	}
}

// TestKubeFlagsNamespace: the namespace a view shows, from the flags and the
// kubeconfig's contexts, as kubectl picks it ("" is every namespace).
func TestKubeFlagsNamespace(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:6443"}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "t"}
	cfg.Contexts["plain"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	cfg.Contexts["shop"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u", Namespace: "shop"}
	cfg.Clusters["d"] = &clientcmdapi.Cluster{Server: "https://127.0.0.2:6443"}
	cfg.Contexts["other"] = &clientcmdapi.Context{Cluster: "d", AuthInfo: "u"}
	cfg.CurrentContext = "shop"
	if err := clientcmd.WriteToFile(*cfg, file); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{nil, "shop"}, // the current context's
		{[]string{"--context", "plain"}, ""},
		{[]string{"-n", "lab"}, "lab"},
		{[]string{"--context", "plain", "--namespace", "lab"}, "lab"},
		{[]string{"-A"}, ""},
		{[]string{"--context", "missing"}, ""},
	}
	for _, tt := range tests {
		var k kubeFlags
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		k.AddFlags(fs)
		if err := fs.Parse(append([]string{"--kubeconfig", file}, tt.args...)); err != nil {
			t.Fatal(err)
		}
		if err := k.Validate(); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		got, err := k.namespace()
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%v: namespace (-want +got):\n%s", tt.args, diff)
		}
	}
	// --context selects the server too.
	for ctx, want := range map[string]string{"": "https://127.0.0.1:6443", "other": "https://127.0.0.2:6443"} {
		k := kubeFlags{kubeconfig: file}
		k.overrides.CurrentContext = ctx
		c, err := k.restConfig()
		if err != nil {
			t.Fatal(err)
		}
		if c.Host != want {
			t.Errorf("--context %q: server %s, want %s", ctx, c.Host, want)
		}
	}
	k := kubeFlags{allNamespaces: true}
	k.overrides.Context.Namespace = "x"
	if err := k.Validate(); err == nil || err.Error() != `--namespace "x" and --all-namespaces: give one` {
		t.Errorf("-n x -A: err = %v", err)
	}
}
