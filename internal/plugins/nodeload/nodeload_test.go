package nodeload

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/ning-edge/ning/internal/schedmetrics"
	"github.com/ning-edge/ning/internal/topology"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// loads is a real topology store holding each node's CPU (and memory
// "full" pressure) as reported now.
func loads(t *testing.T, cpu map[string]float64, memFull map[string]float64) *topology.Store {
	t.Helper()
	s := topology.NewStore(topology.Config{}, clocktesting.NewFakeClock(now))
	for node, c := range cpu {
		l := topology.Load{CPU: c, Updated: now}
		l.PSI.Memory.Full = memFull[node]
		if err := s.ObserveLoad(node, l); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func newPlugin(t *testing.T, store Loads, args string) *Plugin {
	t.Helper()
	var obj runtime.Object
	if args != "" {
		obj = &runtime.Unknown{Raw: []byte(args)}
	}
	p, err := Factory(store, schedmetrics.Register())(context.Background(), obj, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Plugin)
}

func nodeInfo(n *v1.Node) fwk.NodeInfo {
	ni := framework.NewNodeInfo()
	ni.SetNode(n)
	return ni
}

// outcome is a Filter status and a Score, as compared.
type outcome struct {
	Code    fwk.Code
	Reasons []string
	Score   int64
}

func TestNodeLoad(t *testing.T) {
	tests := []struct {
		name    string
		args    string
		cpu     float64
		memFull float64
		// noReport: the node has sent no load report.
		noReport bool
		want     outcome
	}{
		{name: "idle node scores high", cpu: 0.1, want: outcome{Code: fwk.Success, Score: 90}},
		{name: "busier node scores lower", cpu: 0.5, want: outcome{Code: fwk.Success, Score: 50}},
		{name: "in the penalty zone the penalty applies", cpu: 0.72, want: outcome{Code: fwk.Success, Score: 13}},
		{name: "at the CPU limit: filtered, resolvable", cpu: 0.85,
			want: outcome{Code: fwk.Unschedulable, Reasons: []string{"node n: CPU utilisation 85% is at or above the 85% limit"}, Score: 0}},
		{name: "a raised limit from the args", args: `{"cpuFilter": 0.95}`, cpu: 0.9,
			want: outcome{Code: fwk.Success, Score: 0}},
		{name: "memory pressure at the PSI limit: filtered", args: `{"psi": {"memory": {"full": 20}}}`, cpu: 0.1, memFull: 25,
			want: outcome{Code: fwk.Unschedulable, Reasons: []string{"node n: memory pressure (full, avg10) 25.0% is at or above the 20.0% limit"}, Score: 90}},
		{name: "no fresh report: passes with the neutral score", noReport: true,
			want: outcome{Code: fwk.Success, Score: NeutralScore}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cpu, mem := map[string]float64{"n": tt.cpu}, map[string]float64{"n": tt.memFull}
			if tt.noReport {
				cpu = nil
			}
			p := newPlugin(t, loads(t, cpu, mem), tt.args)
			ni := nodeInfo(st.MakeNode().Name("n").Obj())
			pod := st.MakePod().Name("p").Obj()
			status := p.Filter(context.Background(), nil, pod, ni)
			score, sst := p.Score(context.Background(), nil, pod, ni)
			if !sst.IsSuccess() {
				t.Fatalf("Score: %v", sst)
			}
			got := outcome{Code: fwk.Success, Score: score}
			if status != nil {
				got.Code, got.Reasons = status.Code(), status.Reasons()
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestNodeLoadRejectsBadArgs(t *testing.T) {
	_, err := Factory(loads(t, nil, nil), schedmetrics.Register())(context.Background(), &runtime.Unknown{Raw: []byte(`{"cpuFiltre": 0.9}`)}, nil)
	want := "NodeLoad args: pluginConfig.NodeLoad.args.cpuFiltre: Forbidden: unknown field"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}
