package scheduler

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/klog/v2"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"

	"github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/plugins/networklatency"
	"github.com/ning-edge/ning/internal/plugins/pluginargs"
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

// TestDefaultConfigDelayLayers: the delay layers given to the default profile
// (ning scheduler --delay-layers) reach NetworkLatency's args as
// kube-scheduler itself loads the file, and none is written without them.
func TestDefaultConfigDelayLayers(t *testing.T) {
	for _, tt := range []struct {
		name   string
		layers []float64
	}{
		{"none", nil},
		{"three", []float64{5, 20.5, 50}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := DefaultConfig(ConfigParams{DelayLayersMs: tt.layers})
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			loaded, err := schedoptions.LoadConfigFromFile(klog.Background(), file)
			if err != nil {
				t.Fatalf("kube-scheduler cannot load the default configuration: %v\n%s", err, cfg)
			}
			var got *v1alpha1.NetworkLatencyArgs
			for _, p := range loaded.Profiles {
				if p.SchedulerName != ProfileName {
					continue
				}
				for _, pc := range p.PluginConfig {
					if pc.Name != networklatency.Name {
						continue
					}
					got = &v1alpha1.NetworkLatencyArgs{}
					if err := pluginargs.Decode(pc.Name, pc.Args, got); err != nil {
						t.Fatal(err)
					}
				}
			}
			if got == nil {
				t.Fatalf("no %s args in profile %s:\n%s", networklatency.Name, ProfileName, cfg)
			}
			if diff := cmp.Diff(tt.layers, got.DelayLayersMs); diff != "" {
				t.Errorf("delayLayersMs (-want +got):\n%s", diff)
			}
		})
	}
}
