package rescheduler

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/topology"
)

// t0 is when every test's fake clock starts.
var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// nodeBuilder builds a Node fluently, as kube-scheduler's st.MakeNode does.
type nodeBuilder struct{ n v1.Node }

func makeNode(name, site string) *nodeBuilder {
	return &nodeBuilder{v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1.LabelTopologyZone: site}},
		Status: v1.NodeStatus{Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(t0.Add(-time.Hour))}},
			Allocatable: v1.ResourceList{v1.ResourceCPU: resource.MustParse("4"), v1.ResourceMemory: resource.MustParse("8Gi"), v1.ResourcePods: resource.MustParse("110")}},
	}}
}

// cpu sets the node's allocatable CPU (4 by default).
func (b *nodeBuilder) cpu(q string) *nodeBuilder {
	b.n.Status.Allocatable[v1.ResourceCPU] = resource.MustParse(q)
	return b
}

// ready sets the Ready condition's status, changed at since.
func (b *nodeBuilder) ready(s v1.ConditionStatus, since time.Time) *nodeBuilder {
	b.n.Status.Conditions[0].Status = s
	b.n.Status.Conditions[0].LastTransitionTime = metav1.NewTime(since)
	return b
}

func (b *nodeBuilder) downTaint() *nodeBuilder {
	b.n.Spec.Taints = append(b.n.Spec.Taints, v1.Taint{Key: TaintNodeDown, Effect: v1.TaintEffectNoSchedule})
	return b
}

// downTaintAt puts the taint on as the rescheduler does, added at.
func (b *nodeBuilder) downTaintAt(at time.Time) *nodeBuilder {
	b.n.Spec.Taints = append(b.n.Spec.Taints, v1.Taint{Key: TaintNodeDown, Effect: v1.TaintEffectNoSchedule, TimeAdded: ptr.To(metav1.NewTime(at))})
	return b
}

// cloud labels the node a cloud node (CloudFallback's default label).
func (b *nodeBuilder) cloud() *nodeBuilder {
	b.n.Labels["kubernetes.io/role"] = "cloud"
	return b
}

func (b *nodeBuilder) obj() *v1.Node { return b.n.DeepCopy() }

// podBuilder builds a Pod fluently, as kube-scheduler's st.MakePod does.
type podBuilder struct{ p v1.Pod }

func makePod(name string) *podBuilder {
	return &podBuilder{v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name),
			CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour))},
		Spec:   v1.PodSpec{SchedulerName: "ning-scheduler"},
		Status: v1.PodStatus{Phase: v1.PodRunning, Conditions: []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}}},
	}}
}

func (b *podBuilder) on(node string) *podBuilder { b.p.Spec.NodeName = node; return b }

// owner makes the pod controlled by a kind/name controller.
func (b *podBuilder) owner(kind, name string) *podBuilder {
	b.p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name,
		UID: types.UID("uid-" + kind + "-" + name), Controller: ptr.To(true)}}
	return b
}

// requestCPU gives the pod a container that requests q of CPU.
func (b *podBuilder) requestCPU(q string) *podBuilder {
	b.p.Spec.Containers = []v1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10",
		Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse(q)}}}}
	return b
}

func (b *podBuilder) label(k, v string) *podBuilder {
	if b.p.Labels == nil {
		b.p.Labels = map[string]string{}
	}
	b.p.Labels[k] = v
	return b
}

// terminating marks the pod deleted (at t0), its containers still stopping.
func (b *podBuilder) terminating() *podBuilder {
	b.p.DeletionTimestamp = ptr.To(metav1.NewTime(t0))
	return b
}

func (b *podBuilder) notReady() *podBuilder {
	b.p.Status.Conditions[0].Status = v1.ConditionFalse
	return b
}

func (b *podBuilder) obj() *v1.Pod { return b.p.DeepCopy() }

// createPod creates a built pod in the apiserver (with a container and
// without its UID, which the apiserver assigns) and sets its status, as its
// kubelet would have.
func createPod(ctx context.Context, t *testing.T, c kubernetes.Interface, p *v1.Pod) {
	t.Helper()
	p.UID = ""
	if len(p.Spec.Containers) == 0 {
		p.Spec.Containers = []v1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}
	}
	created, err := c.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Status = p.Status
	if _, err := c.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// lineStore is sites a, b, c in a row, 20 ms apart, with traffic as given.
func lineStore(t *testing.T, clk clock.PassiveClock, traffic map[string]float64, rtt map[[2]string]float64) *topology.Store {
	t.Helper()
	s := topology.NewStore(topology.Config{}, clk)
	if rtt == nil {
		rtt = map[[2]string]float64{{"a", "b"}: 20, {"b", "c"}: 20, {"a", "c"}: 40}
	}
	for k, v := range rtt {
		if err := s.SetStaticRTT(k[0], k[1], v); err != nil {
			t.Fatal(err)
		}
	}
	for site, v := range traffic {
		if err := s.SetTraffic(site, v, time.Time{}, true); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func testMetrics(t *testing.T) *Metrics {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func typesUID(s string) types.UID { return types.UID(s) }

func everything() labels.Selector { return labels.Everything() }

// testHealer is a healer on a fake clock at t0, with DefaultConfig changed
// by edit (when not nil), no client and no recorder.
func testHealer(t *testing.T, edit func(*Config)) (*healer, *Metrics, *clocktesting.FakeClock) {
	t.Helper()
	clk := clocktesting.NewFakeClock(t0)
	cfg := DefaultConfig()
	if edit != nil {
		edit(&cfg)
	}
	m := testMetrics(t)
	return newHealer(cfg, nil, m, discard(), clk, nil), m, clk
}
