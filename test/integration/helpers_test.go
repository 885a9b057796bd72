package integration

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/scheduler"
	"github.com/ning-edge/ning/internal/testcluster"
	"github.com/ning-edge/ning/internal/topology"
)

// env is a control plane with nodes in sites a, b, c (two each) and one cloud
// node, and the ning scheduler reading from store.
type env struct {
	cp    *testcluster.ControlPlane
	c     kubernetes.Interface
	store *topology.Store
	ctx   context.Context
	site  map[string]string // node -> site
}

func startEnv(t *testing.T, store *topology.Store, controllers bool) *env {
	t.Helper()
	cp := testcluster.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &env{cp: cp, c: cp.Client, store: store, ctx: ctx, site: map[string]string{}}
	e.createNodes(t)
	if controllers {
		if err := testcluster.StartWorkloadControllers(ctx, e.c); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := scheduler.DefaultConfig(scheduler.ConfigParams{Kubeconfig: cp.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := scheduler.Start(ctx, cp.Dir, cfg, store); err != nil {
		t.Fatal(err)
	}
	return e
}

// createNodes creates nodes a-0 .. c-1 (two per site) and the cloud node
// cloud-0, Ready, and records their sites.
func (e *env) createNodes(t *testing.T) {
	t.Helper()
	for _, site := range []string{"a", "b", "c"} {
		for i := range 2 {
			name := fmt.Sprintf("%s-%d", site, i)
			if _, err := testcluster.CreateReadyNode(e.ctx, e.c, testcluster.Node{Name: name, Site: site}); err != nil {
				t.Fatal(err)
			}
			e.site[name] = site
		}
	}
	if _, err := testcluster.CreateReadyNode(e.ctx, e.c, testcluster.Node{Name: "cloud-0", Site: "cloud", Labels: map[string]string{"kubernetes.io/role": "cloud"}}); err != nil {
		t.Fatal(err)
	}
	e.site["cloud-0"] = "cloud"
}

func staticStore(t *testing.T, rtt map[[2]string]float64, traffic map[string]float64) *topology.Store {
	t.Helper()
	s := topology.NewStore(topology.Config{}, clock.RealClock{})
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

func (e *env) namespace(t *testing.T) string {
	t.Helper()
	name := notDNS.ReplaceAllString(strings.ToLower(t.Name()), "-")
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	name = strings.Trim(name, "-")
	if _, err := e.c.CoreV1().Namespaces().Create(e.ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

func podSpec() v1.PodSpec {
	return v1.PodSpec{
		SchedulerName: scheduler.ProfileName,
		Containers: []v1.Container{{
			Name: "app", Image: "registry.invalid/app:1",
			Resources: v1.ResourceRequirements{Requests: v1.ResourceList{
				v1.ResourceCPU: resource.MustParse("100m"), v1.ResourceMemory: resource.MustParse("64Mi"),
			}},
		}},
	}
}

func (e *env) createPod(t *testing.T, ns, name string, labels map[string]string, edit func(*v1.Pod)) {
	t.Helper()
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}, Spec: podSpec()}
	if edit != nil {
		edit(pod)
	}
	if _, err := e.c.CoreV1().Pods(ns).Create(e.ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitSite waits for a pod to be bound and returns its site.
func (e *env) waitSite(t *testing.T, ns, name string) string {
	t.Helper()
	var node string
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := e.c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		node = p.Spec.NodeName
		return node != "", nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not bound: %v", ns, name, err)
	}
	return e.site[node]
}

// waitUnschedulable waits for the pod's PodScheduled condition to say
// Unschedulable and returns its message.
func (e *env) waitUnschedulable(t *testing.T, ns, name string) string {
	t.Helper()
	var msg string
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := e.c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse && c.Reason == v1.PodReasonUnschedulable {
				msg = c.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s never reported Unschedulable: %v", ns, name, err)
	}
	return msg
}

// waitNote waits for the scheduler's placement note on the pod (the
// ning.io/placement annotation TrafficLatency's Bind sets) and returns it.
func (e *env) waitNote(t *testing.T, ns, pod string) string {
	t.Helper()
	var note string
	err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := e.c.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		note = p.Annotations[policy.AnnotationPlacement]
		return note != "", nil
	})
	if err != nil {
		t.Fatalf("no placement note on %s/%s: %v", ns, pod, err)
	}
	return note
}

// waitEvent waits for an event on the pod with the given reason and returns its note.
func (e *env) waitEvent(t *testing.T, ns, pod, reason string) string {
	t.Helper()
	var note string
	err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := e.c.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, ev := range list.Items {
			if ev.Regarding.Name == pod && ev.Reason == reason {
				note = ev.Note
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no %s event on %s/%s: %v", reason, ns, pod, err)
	}
	return note
}

func (e *env) createReplicaSet(t *testing.T, ns, name string, replicas int32, labels map[string]string) {
	t.Helper()
	sel := map[string]string{"app": name}
	podLabels := map[string]string{"app": name}
	for k, v := range labels {
		podLabels[k] = v
	}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: podLabels}, Spec: podSpec()},
		},
	}
	if _, err := e.c.AppsV1().ReplicaSets(ns).Create(e.ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// sitesOf waits until n pods matching the selector are bound and counts them per site.
func (e *env) sitesOf(t *testing.T, ns, selector string, n int) map[string]int {
	t.Helper()
	var count map[string]int
	err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := e.c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}
		count = map[string]int{}
		bound := 0
		for _, p := range list.Items {
			if p.Spec.NodeName != "" {
				bound++
				count[e.site[p.Spec.NodeName]]++
			}
		}
		return bound == n && len(list.Items) == n, nil
	})
	if err != nil {
		t.Fatalf("%d pods %s not all bound: %v (so far %v)", n, selector, err, count)
	}
	return count
}
