package cloudfallback

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
)

func TestCloudFallback(t *testing.T) {
	tests := []struct {
		name   string
		args   string
		labels map[string]string
		want   int64
	}{
		{name: "edge node", labels: map[string]string{"kubernetes.io/role": "edge"}, want: framework.MaxNodeScore},
		{name: "unlabelled node is edge", want: framework.MaxNodeScore},
		{name: "cloud node", labels: map[string]string{"kubernetes.io/role": "cloud"}, want: 0},
		{name: "cloud label from the args", args: `{"cloudLabel": "example.com/tier", "cloudValue": "far"}`,
			labels: map[string]string{"example.com/tier": "far", "kubernetes.io/role": "edge"}, want: 0},
		{name: "default cloud label is not the args'", args: `{"cloudLabel": "example.com/tier", "cloudValue": "far"}`,
			labels: map[string]string{"kubernetes.io/role": "cloud"}, want: framework.MaxNodeScore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var obj runtime.Object
			if tt.args != "" {
				obj = &runtime.Unknown{Raw: []byte(tt.args)}
			}
			p, err := New(context.Background(), obj, nil)
			if err != nil {
				t.Fatal(err)
			}
			ni := framework.NewNodeInfo()
			n := st.MakeNode().Name("n")
			for k, v := range tt.labels {
				n = n.Label(k, v)
			}
			ni.SetNode(n.Obj())
			got, status := p.(*Plugin).Score(context.Background(), nil, st.MakePod().Obj(), ni)
			if !status.IsSuccess() {
				t.Fatal(status)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("score (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCloudFallbackRejectsBadArgs(t *testing.T) {
	tests := []struct{ args, want string }{
		{`{"cloudLable": "x"}`, "CloudFallback args: pluginConfig.CloudFallback.args.cloudLable: Forbidden: unknown field"},
		{`{"cloudValue": "a b"}`, `CloudFallback args: pluginConfig.CloudFallback.args.cloudValue: Invalid value: "a b"`},
	}
	for _, tt := range tests {
		_, err := New(context.Background(), &runtime.Unknown{Raw: []byte(tt.args)}, nil)
		if err == nil || len(err.Error()) < len(tt.want) || err.Error()[:len(tt.want)] != tt.want {
			t.Errorf("args %s: err = %v, want %q", tt.args, err, tt.want)
		}
	}
}

// TestCloudFallbackSkipsUniform: PreScore skips Score when every node left
// would score alike, and lets it run when edge and cloud nodes are mixed.
func TestCloudFallbackSkipsUniform(t *testing.T) {
	p, err := New(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	node := func(name, role string) fwk.NodeInfo {
		ni := framework.NewNodeInfo()
		ni.SetNode(st.MakeNode().Name(name).Label("kubernetes.io/role", role).Obj())
		return ni
	}
	for _, tt := range []struct {
		name  string
		nodes []fwk.NodeInfo
		skip  bool
	}{
		{"no node", nil, true},
		{"edge nodes only", []fwk.NodeInfo{node("a", "edge"), node("b", "edge")}, true},
		{"cloud nodes only", []fwk.NodeInfo{node("c", "cloud"), node("d", "cloud")}, true},
		{"edge and cloud", []fwk.NodeInfo{node("a", "edge"), node("b", "edge"), node("c", "cloud")}, false},
		{"cloud first", []fwk.NodeInfo{node("c", "cloud"), node("a", "edge")}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status := p.(*Plugin).PreScore(context.Background(), nil, st.MakePod().Obj(), tt.nodes)
			if got := status.IsSkip(); got != tt.skip || (!got && !status.IsSuccess()) {
				t.Errorf("PreScore: %v, want skip %v", status, tt.skip)
			}
		})
	}
}
