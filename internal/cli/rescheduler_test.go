package cli

import (
	"strings"
	"testing"
)

// TestReschedulerFlagErrors: bad flags stop the command before it touches a
// cluster, with a message naming what is wrong.
func TestReschedulerFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--threshold", "2"}, "threshold 2: want a fraction in [0, 1)"},
		{[]string{"--hold-cycles", "0"}, "hold cycles 0: want at least 1"},
		{[]string{"--interval", "0s"}, "interval 0s: want a positive duration"},
		{[]string{"--max-evictions-per-workload", "0"}, "want at least 1 each"},
		{[]string{"--node-down-after", "-1s"}, "node down after -1s"},
		{[]string{"--min-gain-ms", "-1"}, "min gain -1 ms"},
		{[]string{"--move-cooldown", "-1s"}, "move cooldown -1s"},
		{[]string{"--bounce-backoff-max", "0s"}, "bounce backoff max 0s"},
		{[]string{"--eviction-qps", "-1"}, "eviction QPS -1"},
		{[]string{"--eviction-burst", "0"}, "eviction burst 0"},
		{[]string{"--ewma-alpha", "0"}, "--ewma-alpha 0"},
		{[]string{"--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"--dry-run", "--kubeconfig", "/nonexistent/kubeconfig"}, "kubeconfig"},
	} {
		out, err := runCLI(t, append([]string{"rescheduler", "--listen", ""}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v (output %q), want an error containing %q", tc.args, err, out, tc.want)
		}
	}
}
