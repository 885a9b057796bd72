package chart

import (
	"os"
	"os/exec"
	"testing"
)

// TestAlertRules checks deploy/prometheus/ning-rules.yaml with promtool
// (Debian's prometheus package ships it; NING_PROMTOOL names another).
func TestAlertRules(t *testing.T) {
	tool := os.Getenv("NING_PROMTOOL")
	if tool == "" {
		var err error
		if tool, err = exec.LookPath("promtool"); err != nil {
			t.Skip("promtool not found (apt-get install -y prometheus): the alert rules were not checked; CI sets NING_PROMTOOL so that it fails instead")
		}
	}
	out, err := exec.Command(tool, "check", "rules", "../../deploy/prometheus/ning-rules.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
