package rescheduler

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/ning-edge/ning/internal/testcluster"
)

// TestDownTaintUnderChartRBAC taints and untaints a node on a real
// apiserver with RBAC on, as a user holding only the node verbs the chart's
// ClusterRole grants the rescheduler (deploy/helm/ning/templates/
// rescheduler.yaml: get, list, watch, patch). The lab found the taint
// Forbidden on a real cluster when setDownTaint used Update; an admin
// client, or a fake one, never showed it. Other taints on the node stay.
func TestDownTaintUnderChartRBAC(t *testing.T) {
	ctx := context.Background()
	cp := testcluster.Start(t, "--authorization-mode=RBAC")
	node, err := testcluster.CreateReadyNode(ctx, cp.Client, testcluster.Node{Name: "a-0", Site: "a"})
	if err != nil {
		t.Fatal(err)
	}
	other := v1.Taint{Key: "example.com/other", Effect: v1.TaintEffectPreferNoSchedule}
	node.Spec.Taints = append(node.Spec.Taints, other)
	if _, err := cp.Client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	client := chartClient(ctx, t, cp, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch", "patch"}},
		func(ctx context.Context, c kubernetes.Interface) error {
			_, err := c.CoreV1().Nodes().Get(ctx, "a-0", metav1.GetOptions{})
			return err
		})
	h := newHealer(DefaultConfig(), client, testMetrics(t), discard(), clocktesting.NewFakeClock(t0), record.NewFakeRecorder(10))
	taints := func() (down, kept bool) {
		n, err := cp.Client.CoreV1().Nodes().Get(ctx, "a-0", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tn := range n.Spec.Taints {
			down = down || (tn.Key == TaintNodeDown && tn.Effect == v1.TaintEffectNoSchedule)
			kept = kept || tn.Key == other.Key
		}
		return down, kept
	}
	if err := h.setDownTaint(ctx, "a-0", true); err != nil {
		t.Fatalf("tainting with the chart's node verbs: %v", err)
	}
	if down, kept := taints(); !down || !kept {
		t.Errorf("after tainting: %s %t, %s kept %t", TaintNodeDown, down, other.Key, kept)
	}
	if err := h.setDownTaint(ctx, "a-0", false); err != nil {
		t.Fatalf("untainting with the chart's node verbs: %v", err)
	}
	if down, kept := taints(); down || !kept {
		t.Errorf("after untainting: %s %t, %s kept %t", TaintNodeDown, down, other.Key, kept)
	}
}

// chartClient is a client acting as the chart's rescheduler ServiceAccount,
// which holds only rule, once probe succeeds with it (the RBAC authorizer
// sees a new binding once its informers have).
func chartClient(ctx context.Context, t *testing.T, cp *testcluster.ControlPlane, rule rbacv1.PolicyRule, probe func(context.Context, kubernetes.Interface) error) kubernetes.Interface {
	t.Helper()
	const user = "system:serviceaccount:ning:ning-rescheduler"
	name := "rescheduler-" + rule.Resources[0]
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{rule}}
	if _, err := cp.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}}
	if _, err := cp.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(cp.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var last error
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		last = probe(ctx, client)
		return last == nil, nil
	}); err != nil {
		t.Fatalf("the binding never let %s %v %v: %v", user, rule.Verbs, rule.Resources, last)
	}
	return client
}
