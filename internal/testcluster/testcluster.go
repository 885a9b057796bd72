// Package testcluster is internal/devcluster for tests: a real Kubernetes
// control plane in process (embedded etcd, the real kube-apiserver), stopped
// when the test ends, with a test's failures for its errors.
package testcluster

import (
	"context"
	"io"
	"os"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/ning-edge/ning/internal/devcluster"
	"github.com/ning-edge/ning/internal/nodesim"
)

// LogsEnv names the environment variable that, set to 1, shows klog's and
// etcd's output on stderr.
const LogsEnv = "NING_TEST_LOGS"

var quietOnce sync.Once

// quiet discards klog's global output in a test binary (the embedded
// apiserver logs every start at info level) unless NING_TEST_LOGS=1. Only
// tests call it: commands bridge klog to their slog logger instead
// (internal/logging).
func quiet() {
	quietOnce.Do(func() {
		if os.Getenv(LogsEnv) != "1" {
			klog.LogToStderr(false)
			klog.SetOutput(io.Discard)
		}
	})
}

// ControlPlane is a running etcd and kube-apiserver.
type ControlPlane = devcluster.Cluster

// TB is what Start needs of a test or benchmark.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
	Context() context.Context
}

var _ TB = (*testing.T)(nil)

// Start launches embedded etcd and an in-process kube-apiserver, stopped when
// the test ends. extraFlags are appended to the apiserver's flags.
func Start(t TB, extraFlags ...string) *ControlPlane {
	t.Helper()
	quiet()
	// The cluster outlives t.Context() by the cleanups that still use it.
	cp, err := devcluster.Start(context.WithoutCancel(t.Context()), devcluster.Options{
		Dir: t.TempDir(), APIServerFlags: extraFlags, EtcdLogs: os.Getenv(LogsEnv) == "1"})
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Fatalf("stopping the control plane: %v", err)
		}
	})
	return cp
}

// Node describes a node to create.
type Node = nodesim.Node

// CreateReadyNode creates a node that the scheduler will use: capacity set,
// Ready, and without the not-ready taint that admission adds.
func CreateReadyNode(ctx context.Context, c kubernetes.Interface, s Node) (*v1.Node, error) {
	return nodesim.CreateReadyNode(ctx, c, s)
}

// StartWorkloadControllers runs the real ReplicaSet and Deployment controllers
// until ctx is done.
func StartWorkloadControllers(ctx context.Context, c kubernetes.Interface) error {
	_, err := devcluster.StartWorkloadControllers(ctx, c)
	return err
}

// StartDisruptionController runs the real disruption controller until ctx is
// done (see devcluster.StartDisruptionController).
func StartDisruptionController(ctx context.Context, cfg *rest.Config) error {
	_, err := devcluster.StartDisruptionController(ctx, cfg)
	return err
}

// Placement is devcluster.Placement.
func Placement(ctx context.Context, c kubernetes.Interface, ns, selector string, siteOf map[string]string) (perSite map[string]int, ready, total int, err error) {
	return devcluster.Placement(ctx, c, ns, selector, siteOf)
}

// ReadyAway is devcluster.ReadyAway.
func ReadyAway(ctx context.Context, c kubernetes.Interface, ns, selector, node string) (ready int, onNode bool, err error) {
	return devcluster.ReadyAway(ctx, c, ns, selector, node)
}
