// Package devcluster runs a real Kubernetes control plane in this process,
// for ning's demo, its benchmarks and (through internal/testcluster) its
// tests: embedded etcd, the real kube-apiserver, and the real ReplicaSet,
// Deployment and disruption controllers. Its API takes a context and returns
// errors; nothing in it knows about testing.
package devcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options shape a cluster. The zero value is a working cluster.
type Options struct {
	// Dir holds etcd's data, the certificates and the kubeconfig; "" makes
	// a temporary directory that Stop removes.
	Dir string
	// APIServerFlags are appended to the kube-apiserver's flags.
	APIServerFlags []string
	// EtcdLogs shows etcd's own log (errors only) on stderr.
	EtcdLogs bool
	// Log receives the cluster's progress at debug level; nil discards it.
	Log *slog.Logger
}

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	// Config is an admin loopback configuration.
	Config *rest.Config
	// Client is a clientset built from Config.
	Client kubernetes.Interface
	// Kubeconfig is a kubeconfig file for Config.
	Kubeconfig string
	// Dir is the cluster's directory.
	Dir string

	etcd    *embed.Etcd
	api     *APIServer
	tempDir bool
	once    sync.Once
	err     error
}

// Start launches embedded etcd and an in-process kube-apiserver; Stop stops
// them (ctx bounds only the start, so that what runs on the cluster can
// stop before it does).
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c = &Cluster{Dir: o.Dir}
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "ning-devcluster-"); err != nil {
			return nil, fmt.Errorf("cluster directory: %w", err)
		}
		c.tempDir = true
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Stop())
			c = nil
		}
	}()
	t0 := time.Now()
	var etcdURL string
	if c.etcd, etcdURL, err = StartEtcd(ctx, filepath.Join(c.Dir, "etcd"), o.EtcdLogs); err != nil {
		return c, err
	}
	log.Debug("etcd up", "url", etcdURL, "seconds", time.Since(t0).Seconds())
	flags := append([]string{
		// No ServiceAccount or token controllers run here.
		"--disable-admission-plugins=ServiceAccount",
		"--endpoint-reconciler-type=none",
	}, o.APIServerFlags...)
	if c.api, err = StartAPIServer(ctx, filepath.Join(c.Dir, "apiserver"), Storage(etcdURL), flags); err != nil {
		return c, err
	}
	log.Debug("kube-apiserver up", "host", c.api.Config.Host, "seconds", time.Since(t0).Seconds())
	c.Config = c.api.Config
	c.Config.QPS, c.Config.Burst = 1000, 2000
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return c, fmt.Errorf("clientset: %w", err)
	}
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := WriteKubeconfig(c.Config, c.Kubeconfig); err != nil {
		return c, fmt.Errorf("kubeconfig: %w", err)
	}
	return c, nil
}

// Stop stops the apiserver, then etcd, and removes a temporary directory;
// it is idempotent and returns the first call's error.
func (c *Cluster) Stop() error {
	c.once.Do(func() {
		var errs []error
		if c.api != nil {
			errs = append(errs, c.api.Stop())
		}
		if c.etcd != nil {
			c.etcd.Close()
		}
		if c.tempDir {
			errs = append(errs, os.RemoveAll(c.Dir))
		}
		c.err = errors.Join(errs...)
	})
	return c.err
}

// Storage is the kube-apiserver storage configuration for the etcd at
// etcdURL, under a prefix of its own.
func Storage(etcdURL string) *storagebackend.Config {
	s := storagebackend.NewDefaultConfig(path.Join(uuid.New().String(), "registry"), nil)
	s.Transport.ServerList = []string{etcdURL}
	return s
}

// StartEtcd starts an embedded single-member etcd storing in dataDir on free
// loopback ports and returns it with its client URL. logs shows its errors
// on stderr; otherwise it is silent.
func StartEtcd(ctx context.Context, dataDir string, logs bool) (*embed.Etcd, string, error) {
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
		cfg.LogLevel = zapcore.ErrorLevel.String()
		if !logs {
			cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		}
		cfg.ListenClientUrls = []url.URL{clientURL}
		cfg.AdvertiseClientUrls = []url.URL{clientURL}
		cfg.ListenPeerUrls = []url.URL{peerURL}
		cfg.AdvertisePeerUrls = []url.URL{peerURL}
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		if err := os.RemoveAll(dataDir); err != nil {
			return nil, "", fmt.Errorf("etcd data directory: %w", err)
		}
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
			return nil, "", errors.New("etcd did not become ready in 60s")
		case <-ctx.Done():
			e.Close()
			return nil, "", fmt.Errorf("starting etcd: %w", context.Cause(ctx))
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

// WriteKubeconfig writes a kubeconfig file for c.
func WriteKubeconfig(c *rest.Config, file string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["dev"] = &clientcmdapi.Cluster{
		Server:                   c.Host,
		CertificateAuthorityData: c.CAData,
		TLSServerName:            c.ServerName,
		InsecureSkipTLSVerify:    c.Insecure,
	}
	kc.AuthInfos["dev"] = &clientcmdapi.AuthInfo{
		Token:                 c.BearerToken,
		ClientCertificateData: c.CertData,
		ClientKeyData:         c.KeyData,
	}
	kc.Contexts["dev"] = &clientcmdapi.Context{Cluster: "dev", AuthInfo: "dev"}
	kc.CurrentContext = "dev"
	return clientcmd.WriteToFile(*kc, file)
}
