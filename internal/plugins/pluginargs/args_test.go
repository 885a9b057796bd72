package pluginargs

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/policy"
)

func raw(json string) runtime.Object { return &runtime.Unknown{Raw: []byte(json)} }

func TestDecodeDefaults(t *testing.T) {
	var a configv1alpha1.NetworkLatencyArgs
	if err := Decode("NetworkLatency", nil, &a); err != nil {
		t.Fatal(err)
	}
	if a.SiteLabel != "topology.kubernetes.io/zone" || a.UnknownRTT != configv1alpha1.FailClosed {
		t.Fatalf("defaults = %+v", a)
	}
	var l configv1alpha1.NodeLoadArgs
	if err := Decode("NodeLoad", raw(`{"cpuFilter": 0.9}`), &l); err != nil {
		t.Fatal(err)
	}
	want := policy.NodeLoad{LoadPolicy: placement.LoadPolicy{CPUFilter: 0.9, CPUPenaltyFrom: 0.7, Penalty: 0.15},
		MissingLoad: configv1alpha1.MissingLoadNeutral, PodCountWeight: 0.5}
	if diff := cmp.Diff(want, policy.LoadPolicy(l)); diff != "" {
		t.Fatalf("policy (-want +got):\n%s", diff)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name   string
		plugin string
		args   Args
		json   string
		want   string
	}{
		{"bad policy", "NetworkLatency", &configv1alpha1.NetworkLatencyArgs{}, `{"unknownRTT": "Maybe"}`,
			`pluginConfig.NetworkLatency.args.unknownRTT: Unsupported value: "Maybe": supported values: "FailClosed", "FailOpen"`},
		{"bad label", "TrafficLatency", &configv1alpha1.TrafficLatencyArgs{}, `{"siteLabel": "not a label!"}`,
			`pluginConfig.TrafficLatency.args.siteLabel: Invalid value: "not a label!"`},
		{"negative rate", "TrafficLatency", &configv1alpha1.TrafficLatencyArgs{}, `{"perReplicaRPS": -1}`,
			`pluginConfig.TrafficLatency.args.perReplicaRPS: Invalid value: -1: must be a finite number >= 0`},
		{"cpu over 1", "NodeLoad", &configv1alpha1.NodeLoadArgs{}, `{"cpuFilter": 1.5}`,
			`pluginConfig.NodeLoad.args.cpuFilter: Invalid value: 1.5: must be in 0..1`},
		{"penalty above filter", "NodeLoad", &configv1alpha1.NodeLoadArgs{}, `{"cpuFilter": 0.5}`,
			`pluginConfig.NodeLoad.args.cpuPenaltyFrom: Invalid value: 0.7: must not be above cpuFilter (0.5)`},
		{"pod-count weight over 1", "NodeLoad", &configv1alpha1.NodeLoadArgs{}, `{"podCountWeight": 1.5}`,
			`pluginConfig.NodeLoad.args.podCountWeight: Invalid value: 1.5: must be in 0..1`},
		{"bad missing-load policy", "NodeLoad", &configv1alpha1.NodeLoadArgs{}, `{"missingLoad": "filter"}`,
			`pluginConfig.NodeLoad.args.missingLoad: Unsupported value: "filter": supported values: "Neutral", "Filter"`},
		{"psi over 100", "NodeLoad", &configv1alpha1.NodeLoadArgs{}, `{"psi": {"memory": {"full": 120}}}`,
			`pluginConfig.NodeLoad.args.psi.memory.full: Invalid value: 120: must be in 0..100`},
		{"negative delay layer", "NetworkLatency", &configv1alpha1.NetworkLatencyArgs{}, `{"delayLayersMs": [5, -1]}`,
			`pluginConfig.NetworkLatency.args.delayLayersMs[1]: Invalid value: -1: want a delay in ms from 0 to 60000`},
		{"negative layer tolerance", "NetworkLatency", &configv1alpha1.NetworkLatencyArgs{}, `{"delayLayerToleranceMs": -1}`,
			`pluginConfig.NetworkLatency.args.delayLayerToleranceMs: Invalid value: -1: want a tolerance in ms from 0 to 60000`},
		{"misspelt field", "NetworkLatency", &configv1alpha1.NetworkLatencyArgs{}, `{"siteLable": "zone"}`,
			`NetworkLatency args: pluginConfig.NetworkLatency.args.siteLable: Forbidden: unknown field`},
		{"misspelt nested field", "NodeLoad", &configv1alpha1.NodeLoadArgs{}, `{"psi": {"cpu": {"som": 10}}}`,
			`NodeLoad args: pluginConfig.NodeLoad.args.psi.cpu.som: Forbidden: unknown field`},
		{"field twice", "CloudFallback", &configv1alpha1.CloudFallbackArgs{}, `{"cloudValue": "a", "cloudValue": "b"}`,
			`CloudFallback args: pluginConfig.CloudFallback.args.cloudValue: Duplicate value`},
		{"case matters", "TrafficLatency", &configv1alpha1.TrafficLatencyArgs{}, `{"SiteLabel": "zone"}`,
			`pluginConfig.TrafficLatency.args.SiteLabel: Forbidden: unknown field`},
		{"bad cloud value", "CloudFallback", &configv1alpha1.CloudFallbackArgs{}, `{"cloudValue": "a b"}`,
			`pluginConfig.CloudFallback.args.cloudValue: Invalid value: "a b"`},
		{"wrong type", "TrafficLatency", &configv1alpha1.TrafficLatencyArgs{}, `{"perReplicaRPS": "fast"}`,
			`TrafficLatency args:`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Decode(tt.plugin, raw(tt.json), tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDecodeYAMLStrictly(t *testing.T) {
	var a configv1alpha1.NetworkLatencyArgs
	obj := &runtime.Unknown{ContentType: runtime.ContentTypeYAML, Raw: []byte("siteLabel: zone\nunknownRTT: FailOpen\n")}
	if err := Decode("NetworkLatency", obj, &a); err != nil || a.SiteLabel != "zone" || a.UnknownRTT != configv1alpha1.FailOpen {
		t.Fatalf("args %+v, err %v", a, err)
	}
	obj.Raw = []byte("siteLable: zone\n")
	want := "NetworkLatency args: pluginConfig.NetworkLatency.args.siteLable: Forbidden: unknown field"
	if err := Decode("NetworkLatency", obj, &configv1alpha1.NetworkLatencyArgs{}); err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}
