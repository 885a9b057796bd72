// Package testcluster starts a real Kubernetes control plane in process for
// ning's integration tests and benchmarks: embedded etcd plus the real
// kube-apiserver (k8s.io/kubernetes/cmd/kube-apiserver/app/testing), nodes made
// Ready without kubelets (as upstream's scheduler_perf does), and the real
// ReplicaSet and Deployment controllers.
package testcluster

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/ning-edge/ning/internal/nodesim"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
	kubeapiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
	"k8s.io/kubernetes/pkg/controller/deployment"
	"k8s.io/kubernetes/pkg/controller/disruption"
	"k8s.io/kubernetes/pkg/controller/replicaset"
	"k8s.io/kubernetes/test/utils/ktesting"
)

// LogsEnv names the environment variable that, set to 1, shows klog and etcd
// output; otherwise only klog errors.
const LogsEnv = "NING_TEST_LOGS"

var quietOnce, silenceOnce sync.Once

// Silence stops klog from writing anything, errors included, unless
// NING_TEST_LOGS=1: for commands (the demo) whose terminal output is theirs.
// The embedded components' errors that matter surface through ning's own
// checks and logs.
func Silence() {
	silenceOnce.Do(func() {
		if os.Getenv(LogsEnv) == "1" {
			return
		}
		fs := flag.NewFlagSet("klog", flag.ContinueOnError)
		klog.InitFlags(fs)
		_ = fs.Set("logtostderr", "false")
		_ = fs.Set("alsologtostderr", "false")
		_ = fs.Set("stderrthreshold", "FATAL")
		klog.SetOutput(io.Discard)
	})
}

// quiet lowers klog's verbosity to 2 (ktesting's init sets 5) unless -v was
// given, and silences klog's global output unless NING_TEST_LOGS=1.
func quiet() {
	quietOnce.Do(func() {
		if os.Getenv(LogsEnv) != "1" {
			klog.LogToStderr(false)
			klog.SetOutput(io.Discard)
		}
		explicit := false
		flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "v" })
		if !explicit && flag.CommandLine.Lookup("v") != nil {
			_ = flag.Set("v", "2")
		}
	})
}

// ControlPlane is a running etcd and kube-apiserver.
type ControlPlane struct {
	// Config is an admin loopback config.
	Config *rest.Config
	// Client is a clientset built from Config.
	Client kubernetes.Interface
	// Kubeconfig is a kubeconfig file for Config.
	Kubeconfig string
	// Dir is a scratch directory removed at cleanup.
	Dir string
	// Stop stops the apiserver, then etcd; it is idempotent.
	Stop func()
}

// Start launches embedded etcd and an in-process kube-apiserver, stopped when
// the test ends. extraFlags are appended to the apiserver's flags.
func Start(t ktesting.TB, extraFlags ...string) *ControlPlane {
	t.Helper()
	quiet()
	dir := t.TempDir()
	etcd, etcdURL, err := startEtcd(filepath.Join(dir, "etcd"))
	if err != nil {
		t.Fatalf("starting etcd: %v", err)
	}
	storage := storagebackend.NewDefaultConfig(path.Join(uuid.New().String(), "registry"), nil)
	storage.Transport.ServerList = []string{etcdURL}
	flags := append([]string{
		// No ServiceAccount or token controllers run here.
		"--disable-admission-plugins=ServiceAccount",
		"--endpoint-reconciler-type=none",
	}, extraFlags...)
	ts, err := kubeapiservertesting.StartTestServer(t, kubeapiservertesting.NewDefaultTestServerOptions(), flags, storage)
	if err != nil {
		etcd.Close()
		t.Fatalf("starting kube-apiserver: %v", err)
	}
	var once sync.Once
	cp := &ControlPlane{Config: ts.ClientConfig, Dir: dir}
	cp.Stop = func() {
		once.Do(func() {
			ts.TearDownFn()
			etcd.Close()
		})
	}
	t.Cleanup(cp.Stop)
	cp.Config.QPS, cp.Config.Burst = 1000, 2000
	if cp.Client, err = kubernetes.NewForConfig(cp.Config); err != nil {
		t.Fatalf("clientset: %v", err)
	}
	cp.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(cp.Config, cp.Kubeconfig); err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	return cp
}

func startEtcd(dataDir string) (*embed.Etcd, string, error) {
	var lastErr error
	for range 5 {
		ports, err := freePorts(2)
		if err != nil {
			return nil, "", err
		}
		clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))}
		peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))}
		cfg := embed.NewConfig()
		cfg.Dir = dataDir
		cfg.UnsafeNoFsync = true
		cfg.LogLevel = "error"
		if os.Getenv(LogsEnv) != "1" {
			cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		}
		cfg.ListenClientUrls = []url.URL{clientURL}
		cfg.AdvertiseClientUrls = []url.URL{clientURL}
		cfg.ListenPeerUrls = []url.URL{peerURL}
		cfg.AdvertisePeerUrls = []url.URL{peerURL}
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		_ = os.RemoveAll(dataDir)
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			lastErr = err // most likely a port taken in between; try again
			continue
		}
		select {
		case <-e.Server.ReadyNotify():
			return e, clientURL.String(), nil
		case <-time.After(60 * time.Second):
			e.Close()
			return nil, "", fmt.Errorf("etcd did not become ready in 60s")
		}
	}
	return nil, "", fmt.Errorf("starting etcd: %w", lastErr)
}

func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer func() { _ = l.Close() }()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func writeKubeconfig(c *rest.Config, file string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{
		Server:                   c.Host,
		CertificateAuthorityData: c.CAData,
		TLSServerName:            c.ServerName,
		InsecureSkipTLSVerify:    c.Insecure,
	}
	kc.AuthInfos["test"] = &clientcmdapi.AuthInfo{
		Token:                 c.BearerToken,
		ClientCertificateData: c.CertData,
		ClientKeyData:         c.KeyData,
	}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kc.CurrentContext = "test"
	return clientcmd.WriteToFile(*kc, file)
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
	f := informers.NewSharedInformerFactory(c, 0)
	rsc := replicaset.NewReplicaSetController(ctx, f.Apps().V1().ReplicaSets(), f.Core().V1().Pods(), c, replicaset.BurstReplicas)
	dc, err := deployment.NewDeploymentController(ctx, f.Apps().V1().Deployments(), f.Apps().V1().ReplicaSets(), f.Core().V1().Pods(), c)
	if err != nil {
		return fmt.Errorf("deployment controller: %w", err)
	}
	f.Start(ctx.Done())
	go rsc.Run(ctx, 2)
	go dc.Run(ctx, 2)
	return nil
}

// StartDisruptionController runs the real disruption controller until ctx is
// done: it keeps PodDisruptionBudget status current, without which the
// Eviction API refuses every eviction of a pod a budget covers.
func StartDisruptionController(ctx context.Context, cfg *rest.Config) error {
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("disruption controller client: %w", err)
	}
	disc := memory.NewMemCacheClient(c.Discovery())
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(disc)
	scales, err := scale.NewForConfig(cfg, mapper, dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(c.Discovery()))
	if err != nil {
		return fmt.Errorf("disruption controller scale client: %w", err)
	}
	f := informers.NewSharedInformerFactory(c, 0)
	dc := disruption.NewDisruptionController(ctx, f.Core().V1().Pods(), f.Policy().V1().PodDisruptionBudgets(),
		f.Core().V1().ReplicationControllers(), f.Apps().V1().ReplicaSets(), f.Apps().V1().Deployments(),
		f.Apps().V1().StatefulSets(), c, mapper, scales, c.Discovery())
	f.Start(ctx.Done())
	go dc.Run(ctx)
	return nil
}

// Placement counts the running pods (bound, not terminating) matching
// selector in ns per site, with siteOf mapping node to site, and how many of
// them are Ready; total counts every matching pod.
func Placement(ctx context.Context, c kubernetes.Interface, ns, selector string, siteOf map[string]string) (perSite map[string]int, ready, total int, err error) {
	list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("listing pods %s in %s: %w", selector, ns, err)
	}
	perSite = map[string]int{}
	for _, p := range list.Items {
		total++
		if p.Spec.NodeName == "" || p.DeletionTimestamp != nil {
			continue
		}
		perSite[siteOf[p.Spec.NodeName]]++
		for _, cond := range p.Status.Conditions {
			if cond.Type == v1.PodReady && cond.Status == v1.ConditionTrue {
				ready++
			}
		}
	}
	return perSite, ready, total, nil
}

// ReadyAway counts the Ready pods matching selector in ns and reports
// whether any of them (Ready or not) is still bound to node: a workload has
// recovered from losing node when none is and all are Ready.
func ReadyAway(ctx context.Context, c kubernetes.Interface, ns, selector, node string) (ready int, onNode bool, err error) {
	list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return 0, false, fmt.Errorf("listing pods %s in %s: %w", selector, ns, err)
	}
	for _, p := range list.Items {
		if p.Spec.NodeName == node {
			onNode = true
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == v1.PodReady && cond.Status == v1.ConditionTrue {
				ready++
			}
		}
	}
	return ready, onNode, nil
}
