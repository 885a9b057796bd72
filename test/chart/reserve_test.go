package chart

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// checkPlaceholderDeletes: with rescheduler.failoverReserve the scheduler
// may delete pods (PlaceholderPreemption), but the admission policy lets it
// delete only placeholder pods. The release is ning in ns.
func checkPlaceholderDeletes(ctx context.Context, t *testing.T, c *cluster, ns string) {
	t.Helper()
	pod := func(name string, labels map[string]string) {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			Spec: v1.PodSpec{
				SecurityContext: &v1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65535),
					SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}},
				Containers: []v1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10", SecurityContext: &v1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false), Capabilities: &v1.Capabilities{Drop: []v1.Capability{"ALL"}}}}},
			}}
		if _, err := c.client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sched := c.as(t, ns, "ning-scheduler")
	// The policy takes effect once the apiserver's policy informer has it:
	// until then a delete goes through, so each try has a pod of its own.
	tries := 0
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		tries++
		name := fmt.Sprint("app-", tries)
		pod(name, map[string]string{"app": "web"})
		err := sched.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{})
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "ValidatingAdmissionPolicy"), nil
	})
	if err != nil {
		t.Fatalf("the scheduler's delete of an application pod was never refused by the admission policy: %v", err)
	}
	t.Logf("the scheduler's delete of an application pod: refused (after %d tries while the policy loaded)", tries)
	pod("placeholder", map[string]string{"ning.io/placeholder": "true"})
	if err := sched.CoreV1().Pods(ns).Delete(ctx, "placeholder", metav1.DeleteOptions{}); err != nil {
		t.Errorf("the scheduler's delete of a placeholder: %v, want allowed", err)
	}
	if err := c.client.CoreV1().Pods(ns).Delete(ctx, fmt.Sprint("app-", tries), metav1.DeleteOptions{}); err != nil {
		t.Errorf("the admin's delete of the application pod: %v, want allowed", err)
	}
}

// checkPlaceholderPreemption: the scheduler profile enables
// PlaceholderPreemption in place of DefaultPreemption, and a PriorityClass
// for the placeholders never preempts.
func checkPlaceholderPreemption(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	var config string
	classes := 0
	for _, u := range objs {
		switch {
		case u.GetKind() == "ConfigMap" && u.GetName() == "ning-scheduler-config":
			config, _, _ = unstructured.NestedString(u.Object, "data", "config.yaml")
		case u.GetKind() == "PriorityClass":
			classes++
			if p, _, _ := unstructured.NestedString(u.Object, "preemptionPolicy"); p != "Never" {
				t.Errorf("PriorityClass %s: preemptionPolicy %q, want Never", u.GetName(), p)
			}
			if v, _, _ := unstructured.NestedFieldNoCopy(u.Object, "value"); !strings.HasPrefix(fmt.Sprint(v), "-") {
				t.Errorf("PriorityClass %s: value %v, want below every workload's (negative)", u.GetName(), v)
			}
		}
	}
	if !strings.Contains(config, "- name: PlaceholderPreemption") || !strings.Contains(config, "- name: DefaultPreemption") {
		t.Errorf("the scheduler profile does not swap DefaultPreemption for PlaceholderPreemption:\n%s", config)
	}
	if classes != 1 {
		t.Errorf("%d PriorityClasses, want 1 (the placeholders')", classes)
	}
}
