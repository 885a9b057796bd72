package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchFlagErrors: bad flags stop `ning bench scheduler` and `ning bench
// extender` before a control plane starts, with a message naming the flag.
func TestBenchFlagErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for _, cmd := range []string{"scheduler", "extender"} {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--profile-dir", missing}, `--profile-dir "` + missing + `": not a directory`},
			{[]string{"--profile-dir", t.TempDir(), "--cpu-profile", filepath.Join(t.TempDir(), "cpu")}, "--cpu-profile and --profile-dir: choose one"},
			{[]string{"-o", "yaml"}, `--output "yaml": want table or json`},
		} {
			out, err := runCLI(t, append([]string{"bench", cmd}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("bench %s %v: got %v (output %q), want an error containing %q", cmd, tc.args, err, out, tc.want)
			}
		}
	}
}
