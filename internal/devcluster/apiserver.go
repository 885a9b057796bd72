package devcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	apistorage "k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/util/compatibility"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	basecompatibility "k8s.io/component-base/compatibility"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	"k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	"k8s.io/kubernetes/pkg/controlplane/reconcilers"
)

// serviceAccountKey signs the service-account tokens of this loopback-only
// control plane; it is not a secret (upstream's test server uses the same
// kind of fixed key).
const serviceAccountKey = `-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIEZmTmUhuanLjPA2CLquXivuwBDHTt5XYwgIr/kA1LtRoAoGCCqGSM49
AwEHoUQDQgAEH6cuzP8XuD5wal6wf9M6xDljTOPLX2i8uIp/C/ASqiIGUeeKQtX0
/IR3qCXyThP/dbCiHrF3v1cuhBOHY8CLVg==
-----END EC PRIVATE KEY-----`

// APIServer is a kube-apiserver running in this process.
type APIServer struct {
	// Config is its admin loopback configuration.
	Config *rest.Config

	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// StartAPIServer runs the real kube-apiserver (k8s.io/kubernetes/cmd/kube-apiserver/app)
// on a free loopback port, storing in the etcd of storage, with its
// certificates and keys in dir, until Stop (ctx bounds only the start).
// flags are kube-apiserver flags. It returns once /healthz answers ok and the default
// namespace exists. This is what upstream's test server does, without its
// testing.TB: errors are returned, never fatal.
func StartAPIServer(ctx context.Context, dir string, storage *storagebackend.Config, flags []string) (*APIServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("kube-apiserver directory: %w", err)
	}
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	featureGate := utilfeature.DefaultMutableFeatureGate.DeepCopy()
	effectiveVersion := compatibility.DefaultKubeEffectiveVersionForTest()
	effectiveVersion.SetEmulationVersion(featureGate.EmulationVersion())
	// A registry of its own per server, so that servers started one after
	// another (the tests') do not share one.
	registry := basecompatibility.NewComponentGlobalsRegistry()
	if err := registry.Register(basecompatibility.DefaultKubeComponent, effectiveVersion, featureGate); err != nil {
		return nil, fmt.Errorf("kube-apiserver versions: %w", err)
	}
	s := options.NewServerRunOptions()
	s.GenericServerRunOptions.ComponentGlobalsRegistry = registry
	for _, f := range s.Flags().FlagSets {
		fs.AddFlagSet(f)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver listener: %w", err)
	}
	s.SecureServing.Listener, s.SecureServing.BindPort = ln, ln.Addr().(*net.TCPAddr).Port
	s.SecureServing.ServerCert.CertDirectory = dir
	s.SecureServing.ExternalAddress = ln.Addr().(*net.TCPAddr).IP
	s.ServiceClusterIPRanges = "10.0.0.0/16"
	s.Etcd.StorageConfig = *storage
	keyFile := filepath.Join(dir, "service-account.key")
	if err := os.WriteFile(keyFile, []byte(serviceAccountKey), 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("kube-apiserver service-account key: %w", err)
	}
	s.ServiceAccountSigningKeyFile = keyFile
	s.Authentication.ServiceAccounts.Issuers = []string{"https://kubernetes.default.svc"}
	s.Authentication.ServiceAccounts.KeyFiles = []string{keyFile}
	if err := fs.Parse(flags); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("kube-apiserver flags: %w", err)
	}
	if err := registry.Set(); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("kube-apiserver feature gates: %w", err)
	}
	utilfeature.DefaultMutableFeatureGate.AddMetrics()

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	fail := func(err error) (*APIServer, error) {
		cancel()
		_ = ln.Close()
		return nil, err
	}
	completed, err := s.Complete(runCtx)
	if err != nil {
		return fail(fmt.Errorf("kube-apiserver options: %w", err))
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return fail(fmt.Errorf("kube-apiserver options: %w", utilerrors.NewAggregate(errs)))
	}
	config, err := app.NewConfig(completed)
	if err != nil {
		return fail(fmt.Errorf("kube-apiserver configuration: %w", err))
	}
	if reconcilers.Type(s.EndpointReconcilerType) == reconcilers.NoneEndpointReconcilerType {
		config.KubeAPIs.EndpointReconcilerConfig.Reconciler = &noEndpoints{}
	}
	cc, err := config.Complete()
	if err != nil {
		return fail(fmt.Errorf("kube-apiserver configuration: %w", err))
	}
	server, err := app.CreateServerChain(cc)
	if err != nil {
		return fail(fmt.Errorf("kube-apiserver server chain: %w", err))
	}
	a := &APIServer{cancel: cancel, done: make(chan error, 1)}
	go func() {
		defer close(a.done)
		prepared, err := server.PrepareRun()
		if err == nil {
			err = prepared.Run(runCtx)
		}
		if err != nil {
			a.done <- err
		}
	}()
	a.Config = rest.CopyConfig(server.GenericAPIServer.LoopbackClientConfig)
	if err := a.waitReady(ctx); err != nil {
		return nil, errors.Join(err, a.Stop())
	}
	return a, nil
}

// waitReady waits for /healthz and the default namespace.
func (a *APIServer) waitReady(ctx context.Context) error {
	client, err := kubernetes.NewForConfig(a.Config)
	if err != nil {
		return fmt.Errorf("kube-apiserver client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var last error
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-a.done:
			return false, fmt.Errorf("kube-apiserver stopped: %w", err)
		default:
		}
		status := 0
		client.CoreV1().RESTClient().Get().AbsPath("/healthz").Do(ctx).StatusCode(&status)
		if status != 200 {
			last = fmt.Errorf("/healthz: status %d", status)
			return false, nil
		}
		if _, err := client.CoreV1().Namespaces().Get(ctx, metav1.NamespaceDefault, metav1.GetOptions{}); err != nil {
			if !apierrors.IsNotFound(err) {
				last = err
			}
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for kube-apiserver: %w (last: %v)", err, last)
	}
	return nil
}

// Stop stops the server and waits for it; it is idempotent.
func (a *APIServer) Stop() error {
	a.once.Do(func() {
		a.cancel()
		if err, ok := <-a.done; ok && err != nil {
			a.err = fmt.Errorf("kube-apiserver: %w", err)
		}
	})
	return a.err
}

// noEndpoints is upstream's "none" endpoint reconciler (no endpoints for the
// kubernetes Service: a loopback address is no valid endpoint), except that
// RemoveEndpoints says there was nothing to remove until StopReconciling.
// Upstream's always returns nil, which kube-apiserver's bootstrap controller
// takes at start for endpoints left by a crashed apiserver, and logs "Found
// stale data" as an error; at stop it logs any error, so there nil is right.
type noEndpoints struct{ stopping atomic.Bool }

var _ reconcilers.EndpointReconciler = &noEndpoints{}

func (*noEndpoints) ReconcileEndpoints(string, net.IP, []corev1.EndpointPort, bool) error { return nil }

func (r *noEndpoints) RemoveEndpoints(service string, _ net.IP, _ []corev1.EndpointPort) error {
	if r.stopping.Load() {
		return nil
	}
	return apistorage.NewKeyNotFoundError("endpoints of the "+service+" service (none are kept)", 0)
}

func (r *noEndpoints) StopReconciling() { r.stopping.Store(true) }

func (*noEndpoints) Destroy() {}
