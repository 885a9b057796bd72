package integration

import (
	"context"
	"log/slog"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/nodesim"
	"github.com/ning-edge/ning/internal/policy"
)

// TestPlaceholderPreemption runs the ning scheduler profile on a full node
// holding one low-priority application pod and one placeholder: a pending
// pod of higher priority evicts the placeholder and lands, and a second one
// stays Pending, because the application pod (of lower priority too) is never
// a victim. Stock DefaultPreemption would evict the application pod.
func TestPlaceholderPreemption(t *testing.T) {
	e := startEnv(t, staticStore(t, nil, nil), false)
	sim := nodesim.New(e.c, nodesim.Options{}, slog.New(slog.DiscardHandler))
	if err := sim.AddNode(e.ctx, nodesim.Node{Name: "full-0", Site: "a", CPU: "2"}); err != nil {
		t.Fatal(err)
	}
	e.site["full-0"] = "a"
	go func() { _ = sim.Run(e.ctx) }()
	for name, value := range map[string]int32{"placeholder": -10, "batch": -5, "app": 0} {
		pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "ning-test-" + name}, Value: value}
		if name == "placeholder" {
			pc.PreemptionPolicy = ptr.To(v1.PreemptNever)
		}
		if _, err := e.c.SchedulingV1().PriorityClasses().Create(e.ctx, pc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ns := e.namespace(t)
	pinned := func(class string, labels map[string]string) func(*v1.Pod) {
		return func(p *v1.Pod) {
			p.Labels = labels
			p.Spec.PriorityClassName = "ning-test-" + class
			p.Spec.NodeSelector = map[string]string{v1.LabelHostname: "full-0"}
			p.Spec.Containers[0].Resources.Requests[v1.ResourceCPU] = resource.MustParse("1")
		}
	}
	e.createPod(t, ns, "batch", nil, pinned("batch", map[string]string{"app": "batch"}))
	e.createPod(t, ns, "reserve", nil, pinned("placeholder", map[string]string{policy.LabelPlaceholder: "true"}))
	e.waitSite(t, ns, "batch")
	e.waitSite(t, ns, "reserve")

	e.createPod(t, ns, "replacement", nil, pinned("app", map[string]string{"app": "web"}))
	if site := e.waitSite(t, ns, "replacement"); site != "a" {
		t.Fatalf("replacement landed at %q, want a", site)
	}
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := e.c.CoreV1().Pods(ns).Get(ctx, "reserve", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("the placeholder was not preempted: %v", err)
	}

	e.createPod(t, ns, "second", nil, pinned("app", map[string]string{"app": "web"}))
	e.waitUnschedulable(t, ns, "second")
	time.Sleep(2 * time.Second) // a preemption would delete the batch pod by now
	p, err := e.c.CoreV1().Pods(ns).Get(e.ctx, "batch", metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp != nil {
		t.Fatalf("the batch pod, not a placeholder, was preempted: %v %v", err, p.GetDeletionTimestamp())
	}
	if p, _ := e.c.CoreV1().Pods(ns).Get(e.ctx, "second", metav1.GetOptions{}); p.Spec.NodeName != "" || p.Status.NominatedNodeName != "" {
		t.Fatalf("second pod bound or nominated (%q %q) without a placeholder to evict", p.Spec.NodeName, p.Status.NominatedNodeName)
	}
}
