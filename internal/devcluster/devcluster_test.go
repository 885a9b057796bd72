package devcluster

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

// TestStartRunStop starts the cluster, runs the controllers until a
// Deployment has its pods, and stops everything; a second Stop is a no-op.
// kube-apiserver's bootstrap controller logs no error at the start or the
// stop (it once reported "Found stale data" for endpoints a fresh etcd
// cannot hold).
func TestStartRunStop(t *testing.T) {
	ctx := t.Context()
	var (
		mu     sync.Mutex
		errors []string
	)
	klog.SetLogger(funcr.New(func(prefix, args string) {
		// The bootstrap controller's errors; others race the start (a
		// controller may look for kube-system before it exists).
		if strings.Contains(args, "kubernetes service") && strings.Contains(args, `"error"=`) {
			mu.Lock()
			errors = append(errors, prefix+" "+args)
			mu.Unlock()
		}
	}, funcr.Options{}))
	c, err := Start(ctx, Options{})
	if err != nil {
		klog.ClearLogger()
		t.Fatal(err)
	}
	mu.Lock()
	for _, e := range errors {
		t.Errorf("the start logged: %s", e)
	}
	errors = nil
	mu.Unlock()
	dir := c.Dir
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- c.RunControllers(runCtx) }()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: metav1.NamespaceDefault},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "app", Image: "registry.example/web:1"}}},
			},
		},
	}
	if _, err := c.Client.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var total int
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, _, total, err = Placement(ctx, c.Client, d.Namespace, "app=web", nil)
		return total == 3, err
	})
	if err != nil {
		t.Fatalf("the controllers made %d of 3 pods: %v", total, err)
	}
	stop()
	if err := <-ran; err != nil {
		t.Errorf("RunControllers: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	klog.ClearLogger()
	mu.Lock()
	for _, e := range errors {
		t.Errorf("the stop logged an error: %s", e)
	}
	mu.Unlock()
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := c.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err == nil {
		t.Error("the apiserver still answers after Stop")
	}
	if _, err := c.Client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err == nil {
		t.Error("the apiserver still answers after Stop")
	}
	if _, err := Start(ctx, Options{Dir: dir + "-bad", APIServerFlags: []string{"--no-such-flag"}}); err == nil || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("Start with a bad flag = %v, want an error naming it", err)
	}
}
