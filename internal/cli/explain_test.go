package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ning-edge/ning/internal/explain"
)

// TestExplainCommand runs `ning explain` against a real apiserver: NAME with
// -n, NAMESPACE/NAME, table and JSON. web-0 runs in b while a, with 90 of
// the 100 req/s, would score higher today.
func TestExplainCommand(t *testing.T) {
	cp, topo := statusFixture(t)
	base := []string{"explain", "--kubeconfig", cp.Kubeconfig, "--latency-file", topo, "--log-level", "warn"}

	out, err := runCLI(t, append(base, "pod", "web-0", "-n", "default")...)
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	checkContains(t, "explain", out,
		"pod default/web-0: on node b-0 in site b",
		"delay constraints: none",
		"placed: site b (node b-0",
		"on today's data site a scores higher",
		"actual     b=1",
		"planned    a=1",
		"NingPlacement: Placed in site b (node b-0)")

	out, err = runCLI(t, append(base, "po", "default/web-0", "-o", "json")...)
	if err != nil {
		t.Fatalf("explain -o json: %v\n%s", err, out)
	}
	var e explain.Explanation
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatalf("explain -o json: %v\n%s", err, out)
	}
	if e.Pod == nil || e.Pod.Site != "b" || e.Planned.Replicas["a"] != 1 || len(e.Sites) != 2 {
		t.Errorf("explain -o json: %+v", e)
	}

	if _, err := runCLI(t, append(base, "pod", "default/api")...); err == nil || err.Error() != "pod default/api: not found" {
		t.Errorf("explain pod default/api: %v", err)
	}
}

// TestExplainFlagErrors: bad arguments and flags fail with a message naming
// what is wrong.
func TestExplainFlagErrors(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n" +
		"users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"explain", "pod"}, "accepts 2 arg(s), received 1"},
		{[]string{"explain", "service", "a/b", "--kubeconfig", kubeconfig}, `kind "service": want pod or deployment`},
		{[]string{"explain", "pod", "a/b/c", "--kubeconfig", kubeconfig}, `"a/b/c": want NAMESPACE/NAME`},
		{[]string{"explain", "pod", "/b", "--kubeconfig", kubeconfig}, `"/b": want NAMESPACE/NAME`},
		{[]string{"explain", "pod", "b", "-A", "--kubeconfig", kubeconfig}, "--all-namespaces: explain names one object"},
		{[]string{"explain", "pod", "a/b", "--unknown-rtt", "Maybe", "--kubeconfig", kubeconfig}, `--unknown-rtt "Maybe"`},
		{[]string{"explain", "pod", "a/b", "-o", "yaml", "--kubeconfig", kubeconfig}, `-o "yaml": want table or json`},
		{[]string{"explain", "pod", "b", "--kubeconfig", kubeconfig}, "no namespace: give NAMESPACE/NAME, -n NAMESPACE or a context with a namespace"},
		{[]string{"explain", "pod", "a/b", "--kubeconfig", kubeconfig, "--per-replica-rps", "NaN"}, "per-replica rate NaN"},
		{[]string{"explain", "pod", "a/b", "--kubeconfig", kubeconfig, "--timeout", "300ms"}, "listing nodes: "},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := runCLI(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
