package scheduler

import (
	"flag"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite deploy/scheduler-config.yaml from the embedded default")

// TestDeployConfigMatchesDefault keeps deploy/scheduler-config.yaml, the
// configuration for a real cluster, equal to what `ning scheduler` runs
// without --config (in-cluster credentials, leader election on).
func TestDeployConfigMatchesDefault(t *testing.T) {
	want, err := DefaultConfig(ConfigParams{LeaderElect: true})
	if err != nil {
		t.Fatal(err)
	}
	const file = "../../deploy/scheduler-config.yaml"
	if *update {
		if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Fatalf("%s is out of date; run go test ./internal/scheduler -run TestDeployConfig -update (-want +got):\n%s", file, diff)
	}
}
