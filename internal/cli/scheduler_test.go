package cli

import (
	"os"
	"strings"
	"testing"

	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/topology"
)

// TestSchedulerDelayLayers: --delay-layers reaches the default profile's
// NetworkLatency args; a bad delay, or the flag beside --config (whose args
// carry the layers), is an error naming it.
func TestSchedulerDelayLayers(t *testing.T) {
	options := func(t *testing.T, args ...string) *schedulerOptions {
		t.Helper()
		cmd := schedapp.NewSchedulerCommand()
		o := &schedulerOptions{store: topology.NewStore(topology.Config{}, clock.RealClock{}), kubeScheduler: cmd.Flags()}
		o.AddFlags(cmd.Flags())
		if err := cmd.Flags().Parse(args); err != nil {
			t.Fatal(err)
		}
		return o
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--delay-layers", "5ms,soon"}, `--delay-layers: delay layer "soon" is not a delay (want e.g. 30ms or 30)`},
		{[]string{"--config", "my.yaml", "--delay-layers", "5ms"}, "--delay-layers shapes the default profile only: with --config, set delayLayersMs in NetworkLatency's pluginConfig args"},
	} {
		err := options(t, tt.args...).Validate()
		if err == nil || err.Error() != tt.want {
			t.Errorf("%v: Validate = %v, want %q", tt.args, err, tt.want)
		}
	}

	o := options(t, "--delay-layers", "5ms,20,50ms")
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Config(); err != nil {
		t.Fatal(err)
	}
	file := o.kubeScheduler.Lookup("config").Value.String()
	t.Cleanup(func() { _ = os.RemoveAll(strings.TrimSuffix(file, "/config.yaml")) })
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "delayLayersMs: [5, 20, 50]") {
		t.Errorf("the default profile %s lacks delayLayersMs: [5, 20, 50]:\n%s", file, b)
	}
}
