package extender

import (
	"flag"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite deploy/extender-config.yaml from the template")

// TestDeployConfigMatchesTemplate keeps deploy/extender-config.yaml equal to
// the template the integration test runs the stock scheduler with.
func TestDeployConfigMatchesTemplate(t *testing.T) {
	want, err := SchedulerConfig(DeployConfigParams)
	if err != nil {
		t.Fatal(err)
	}
	const file = "../../deploy/extender-config.yaml"
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
		t.Fatalf("%s is out of date; run go test ./internal/extender -run TestDeployConfig -update (-want +got):\n%s", file, diff)
	}
}
