package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/rescheduler"
	"github.com/ning-edge/ning/internal/testcluster"
)

// TestFailoverReserve is seed 002's failover capacity on a cluster with no
// spare capacity: web (2 replicas, each a whole node) runs at a, where the
// traffic is; every other node is full. A node of a is lost. With
// ning.io/failover-reserve the rescheduler keeps placeholders on b (where
// the planner puts web if a fails), the replacement preempts one and runs;
// without it the other nodes hold a low-priority batch workload, which
// nothing may preempt, and the replacement stays Pending. The times are
// reported, not asserted.
func TestFailoverReserve(t *testing.T) {
	const nodeDownAfter = 2 * time.Second
	for _, reserve := range []bool{true, false} {
		t.Run(fmt.Sprintf("reserve=%v", reserve), func(t *testing.T) {
			e := startReschedEnvOn(t, testcluster.Start(t), reschedOptions{replicas: 1, edit: func(c *rescheduler.Config) {
				c.FailoverReserve = reserve
				c.NodeDownAfter = nodeDownAfter
				c.PlaceholderNamespace = "ning-placeholders"
			}})
			for name, value := range map[string]int32{"ning-placeholder": -10, "batch": -5} {
				pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value, PreemptionPolicy: ptr.To(v1.PreemptNever)}
				if _, err := e.c.SchedulingV1().PriorityClasses().Create(e.ctx, pc, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := e.c.CoreV1().Namespaces().Create(e.ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ning-placeholders"}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			ns := e.namespace(t)
			annotations := map[string]string{}
			if reserve {
				annotations[policy.AnnotationFailoverReserve] = "2"
			}
			createWholeNodeDeployment(t, e, ns, "web", 2, "", annotations)
			e.waitPlacement(t, ns, "web", map[string]int{"a": 2}, 60*time.Second)
			if reserve {
				waitPlaceholders(t, e, 2)
			}
			// Fill what is left: no spare capacity anywhere.
			filler := int32(4)
			if reserve {
				filler = 2
			}
			createWholeNodeDeployment(t, e, ns, "batch", filler, "batch", nil)
			if err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
				_, ready, _, err := e.placement(ctx, ns, "batch")
				return ready == int(filler), err
			}); err != nil {
				t.Fatalf("batch did not fill the cluster: %v", err)
			}

			victim := e.busiestNode(t, ns, "web")
			t0 := time.Now()
			e.sim.Stop(victim)
			err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
				ready, onNode, err := testcluster.ReadyAway(ctx, e.c, ns, "app=web", victim)
				return !onNode && ready == 2, err
			})
			if reserve {
				if err != nil {
					t.Fatalf("web not running again after %s was lost, with the reserve: %v", victim, err)
				}
				t.Logf("with the reserve: replacement Running %.1f s after node %s was lost (node down after %v)", time.Since(t0).Seconds(), victim, nodeDownAfter)
				// The preempted placeholder is made again (Pending: no room).
				err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
					pods, err := e.c.CoreV1().Pods("ning-placeholders").List(ctx, metav1.ListOptions{LabelSelector: policy.LabelPlaceholder + "=true"})
					live := 0
					for _, p := range pods.Items {
						if p.DeletionTimestamp == nil {
							live++
						}
					}
					return live == 2, err
				})
				if err != nil {
					t.Fatalf("the preempted placeholder was not made again: %v", err)
				}
				// No workload asks for a reserve any more (web scaled to none;
				// the test cluster runs no garbage collector to delete it
				// whole): its placeholders go.
				scale, err := e.c.AppsV1().Deployments(ns).GetScale(e.ctx, "web", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				scale.Spec.Replicas = 0
				if _, err := e.c.AppsV1().Deployments(ns).UpdateScale(e.ctx, "web", scale, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
				err = wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
					pods, err := e.c.CoreV1().Pods("ning-placeholders").List(ctx, metav1.ListOptions{LabelSelector: policy.LabelPlaceholder + "=true"})
					return err == nil && len(pods.Items) == 0, err
				})
				if err != nil {
					t.Fatalf("placeholders left after the workload that asked for them was deleted: %v", err)
				}
				return
			}
			ready, _, _ := testcluster.ReadyAway(e.ctx, e.c, ns, "app=web", victim)
			t.Logf("without the reserve: %d of 1 replacement Running 20 s after node %s was lost (the replica on the other node of a still runs)", ready-1, victim)
			if err == nil {
				t.Fatalf("web recovered without a reserve on a full cluster: the batch pods were preempted")
			}
		})
	}
}

// createWholeNodeDeployment creates a Deployment of pods each asking for a
// whole node (8 CPU), of the priority class (none: default), with the
// template's annotations.
func createWholeNodeDeployment(t *testing.T, e *reschedEnv, ns, name string, replicas int32, class string, annotations map[string]string) {
	t.Helper()
	spec := podSpec()
	spec.PriorityClassName = class
	spec.Containers[0].Resources.Requests[v1.ResourceCPU] = resource.MustParse("8")
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}, Annotations: annotations}, Spec: spec},
		},
	}
	if _, err := e.c.AppsV1().Deployments(ns).Create(e.ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitPlaceholders waits for n placeholder pods to be bound.
func waitPlaceholders(t *testing.T, e *reschedEnv, n int) {
	t.Helper()
	err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := e.c.CoreV1().Pods("ning-placeholders").List(ctx, metav1.ListOptions{LabelSelector: policy.LabelPlaceholder + "=true"})
		if err != nil {
			return false, err
		}
		bound := 0
		for _, p := range pods.Items {
			if p.Spec.NodeName != "" {
				bound++
			}
		}
		return bound == n, nil
	})
	if err != nil {
		t.Fatalf("%d placeholders not bound: %v", n, err)
	}
}
