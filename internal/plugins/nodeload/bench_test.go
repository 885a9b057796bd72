package nodeload

import (
	"context"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/ning-edge/ning/internal/topology"
)

// benchCluster is 1,000 nodes of 30 pods each, of 30 ReplicaSets of 1,000
// replicas, one per node; rs-0 is the scored pod's.
func benchCluster() ([]*v1.Node, []*v1.Pod) {
	var nodes []*v1.Node
	var pods []*v1.Pod
	for i := range 1000 {
		node := fmt.Sprintf("node-%d", i)
		nodes = append(nodes, st.MakeNode().Name(node).Obj())
		for j := range 30 {
			pods = append(pods, replica(fmt.Sprintf("rs-%d", j), fmt.Sprintf("rs-%d-%d", j, i)).Node(node).Obj())
		}
	}
	return nodes, pods
}

// BenchmarkNodeLoadScore is one pod's PreScore and Score of every node, with
// the default pod-count weight and a fresh load report of every node.
func BenchmarkNodeLoadScore(b *testing.B) {
	nodes, pods := benchCluster()
	p, infos := benchPlugin(b, nodes, pods)
	ctx := context.Background()
	pod := replica("rs-0", "new").Obj()
	b.ResetTimer()
	for range b.N {
		state := framework.NewCycleState()
		if _, s := p.PreFilter(ctx, state, pod, infos); !s.IsSuccess() && !s.IsSkip() {
			b.Fatal(s)
		}
		if s := p.PreScore(ctx, state, pod, infos); !s.IsSuccess() {
			b.Fatal(s)
		}
		for _, ni := range infos {
			if _, s := p.Score(ctx, state, pod, ni); !s.IsSuccess() {
				b.Fatal(s)
			}
		}
	}
}

// benchPlugin is the plugin, its index fed the pods, and the nodes'
// NodeInfos holding them.
func benchPlugin(b *testing.B, nodes []*v1.Node, pods []*v1.Pod) (*Plugin, []fwk.NodeInfo) {
	b.Helper()
	byNode := map[string][]*v1.Pod{}
	for _, p := range pods {
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
	}
	var infos []fwk.NodeInfo
	for _, n := range nodes {
		ni := framework.NewNodeInfo(byNode[n.Name]...)
		ni.SetNode(n)
		infos = append(infos, ni)
	}
	store := topology.NewStore(topology.Config{}, clocktesting.NewFakeClock(now))
	for i, n := range nodes {
		if err := store.ObserveLoad(n.Name, topology.Load{CPU: float64(i%50) / 100, Updated: now}); err != nil {
			b.Fatal(err)
		}
	}
	return newPlugin(b, store, "", pods...), infos
}
