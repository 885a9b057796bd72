package chart

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// as returns a client acting as ServiceAccount sa of namespace ns
// (impersonated, so RBAC and admission see that user).
func (c *cluster) as(t *testing.T, ns, sa string) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(c.cp.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":" + sa,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

// checkAdmissionPolicies sends the chart's ValidatingAdmissionPolicies what
// issue 18 found RBAC allowed: the rescheduler patching other node fields
// than its taint, and discovery creating a Job that runs as another
// ServiceAccount. The release is ning in ns.
func checkAdmissionPolicies(ctx context.Context, t *testing.T, c *cluster, ns string) {
	t.Helper()
	node, err := c.client.CoreV1().Nodes().Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "vap-node", Labels: map[string]string{"site": "a"}},
		Spec: v1.NodeSpec{Taints: []v1.Taint{{Key: "other", Effect: v1.TaintEffectNoSchedule}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Admission adds node.kubernetes.io/not-ready; leave only "other".
	node.Spec.Taints = []v1.Taint{{Key: "other", Effect: v1.TaintEffectNoSchedule}}
	if node, err = c.client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	resched := c.as(t, ns, "ning-rescheduler")
	// patch sends the rescheduler's merge patch (with the resourceVersion,
	// as internal/rescheduler sends it).
	patch := func(client kubernetes.Interface, body map[string]any) error {
		n, err := c.client.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		body["metadata"] = merge(body["metadata"], map[string]any{"resourceVersion": n.ResourceVersion})
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.CoreV1().Nodes().Patch(ctx, node.Name, types.MergePatchType, b, metav1.PatchOptions{})
		return err
	}
	down := map[string]any{"key": "ning.io/node-down", "effect": "NoSchedule"}
	other := map[string]any{"key": "other", "effect": "NoSchedule"}
	// A new label value each time, so that no patch is a no-op.
	relabels := 0
	label := func() map[string]any {
		relabels++
		return map[string]any{"metadata": map[string]any{"labels": map[string]any{"site": fmt.Sprint("b", relabels)}}}
	}

	// The policy takes effect once the apiserver's policy informer has it.
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return patch(resched, label()) != nil, nil
	})
	if err != nil {
		t.Fatalf("the rescheduler's label patch was never refused: %v", err)
	}
	for _, tc := range []struct {
		name   string
		body   map[string]any
		refuse bool
	}{
		{"add the node-down taint", map[string]any{"spec": map[string]any{"taints": []any{other, down}}}, false},
		{"remove the node-down taint", map[string]any{"spec": map[string]any{"taints": []any{other}}}, false},
		{"change a label", label(), true},
		{"add an annotation", map[string]any{"metadata": map[string]any{"annotations": map[string]any{"x": "y"}}}, true},
		{"remove another taint", map[string]any{"spec": map[string]any{"taints": []any{down}}}, true},
		{"add another taint", map[string]any{"spec": map[string]any{"taints": []any{other, map[string]any{"key": "evil", "effect": "NoExecute"}}}}, true},
		{"node-down as NoExecute", map[string]any{"spec": map[string]any{"taints": []any{other, map[string]any{"key": "ning.io/node-down", "effect": "NoExecute"}}}}, true},
		{"cordon", map[string]any{"spec": map[string]any{"unschedulable": true}}, true},
		{"set the provider ID", map[string]any{"spec": map[string]any{"providerID": "evil://x"}}, true},
	} {
		err := patch(resched, tc.body)
		if tc.refuse != (err != nil) || (err != nil && (!apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy"))) {
			t.Errorf("rescheduler: %s: %v, want refused by the admission policy: %v", tc.name, err, tc.refuse)
		} else {
			t.Logf("rescheduler: %s: %s", tc.name, verdict(err))
		}
	}
	// Others are not bound by it.
	if err := patch(c.client, label()); err != nil {
		t.Errorf("the admin's label patch: %v, want allowed", err)
	}

	disc := c.as(t, ns, "ning-discover")
	job := func(name, sa string) *batchv1.Job {
		return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: batchv1.JobSpec{Template: v1.PodTemplateSpec{Spec: v1.PodSpec{
				RestartPolicy: v1.RestartPolicyNever, ServiceAccountName: sa,
				Containers: []v1.Container{{Name: "probe", Image: "registry.k8s.io/pause:3.10"}},
			}}}}
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		_, err := disc.BatchV1().Jobs(ns).Create(ctx, job("vap-wait", "ning-rescheduler"), metav1.CreateOptions{})
		return err != nil, nil
	})
	if err != nil {
		t.Fatalf("discovery's Job as the rescheduler was never refused: %v", err)
	}
	for i, tc := range []struct {
		sa     string
		refuse bool
	}{
		{"ning-probe-job", false},
		{"ning-rescheduler", true},
		{"ning-discover", true},
		{"", true}, // the namespace's default account
	} {
		_, err := disc.BatchV1().Jobs(ns).Create(ctx, job(fmt.Sprint("vap-", i), tc.sa), metav1.CreateOptions{})
		if tc.refuse != (err != nil) || (err != nil && (!apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy"))) {
			t.Errorf("discovery: a Job as %q: %v, want refused by the admission policy: %v", tc.sa, err, tc.refuse)
		} else {
			t.Logf("discovery: a Job as %q: %s", tc.sa, verdict(err))
		}
	}
}

func verdict(err error) string {
	if err == nil {
		return "allowed"
	}
	return "refused: " + err.Error()
}

// merge returns a's map (or a new one) with b's keys added.
func merge(a any, b map[string]any) map[string]any {
	m, _ := a.(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}
