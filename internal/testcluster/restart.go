package testcluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ning-edge/ning/internal/devcluster"
)

// Restartable is a control plane whose kube-apiserver can be stopped and
// started again on the same etcd while its clients keep their address: they
// reach it through a TCP proxy, with a fixed token (from a token file both
// apiservers read) and without verifying the serving certificate, which each
// apiserver generates anew.
type Restartable struct {
	*ControlPlane
	proxy *proxy
	start func() (*devcluster.APIServer, error)
	stop  func()

	mu sync.Mutex
	ts *devcluster.APIServer
}

// StartRestartable is Start with a Restart method.
func StartRestartable(t TB) *Restartable {
	t.Helper()
	quiet()
	ctx := context.WithoutCancel(t.Context())
	dir := t.TempDir()
	etcd, etcdURL, err := devcluster.StartEtcd(ctx, filepath.Join(dir, "etcd"), os.Getenv(LogsEnv) == "1")
	if err != nil {
		t.Fatalf("starting etcd: %v", err)
	}
	token := uuid.NewString()
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+",admin,admin-uid,system:masters\n"), 0o600); err != nil {
		t.Fatalf("token file: %v", err)
	}
	storage := devcluster.Storage(etcdURL)
	flags := []string{"--disable-admission-plugins=ServiceAccount", "--endpoint-reconciler-type=none", "--token-auth-file=" + tokens}
	n := 0
	r := &Restartable{start: func() (*devcluster.APIServer, error) {
		n++
		return devcluster.StartAPIServer(ctx, filepath.Join(dir, fmt.Sprintf("apiserver-%d", n)), storage, flags)
	}}
	if r.ts, err = r.start(); err != nil {
		etcd.Close()
		t.Fatalf("starting kube-apiserver: %v", err)
	}
	if r.proxy, err = newProxy(hostOf(r.ts.Config.Host)); err != nil {
		t.Fatalf("apiserver proxy: %v", err)
	}
	cfg := &rest.Config{Host: "https://" + r.proxy.ln.Addr().String(), BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 1000, Burst: 2000}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("clientset: %v", err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := devcluster.WriteKubeconfig(cfg, kubeconfig); err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	r.ControlPlane = &ControlPlane{Config: cfg, Client: client, Kubeconfig: kubeconfig, Dir: dir}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			r.proxy.close()
			r.mu.Lock()
			_ = r.ts.Stop() // a restart test's apiserver may end with an error
			r.mu.Unlock()
			etcd.Close()
		})
	}
	t.Cleanup(r.stop)
	return r
}

// Stop stops the apiserver, then etcd; it is idempotent.
func (r *Restartable) Stop() error {
	r.stop()
	return nil
}

func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Host
}

// Restart stops the apiserver, cutting every client connection, waits
// down, and starts a new apiserver on the same etcd behind the same address.
func (r *Restartable) Restart(down time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.proxy.setTarget("")
	_ = r.ts.Stop() // the server was cut off on purpose
	time.Sleep(down)
	ts, err := r.start()
	if err != nil {
		return fmt.Errorf("restarting kube-apiserver: %w", err)
	}
	r.ts = ts
	r.proxy.setTarget(hostOf(ts.Config.Host))
	return nil
}

// proxy forwards TCP connections to the current target; with no target it
// refuses them, as a stopped apiserver would.
type proxy struct {
	ln net.Listener

	mu     sync.Mutex
	target string
	conns  map[net.Conn]struct{}
}

func newProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	return p, nil
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *proxy) forward(c net.Conn) {
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	if target == "" {
		_ = c.Close()
		return
	}
	up, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	_ = c.Close()
	_ = up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// setTarget points new connections at target and cuts the existing ones.
func (p *proxy) setTarget(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
	for c := range p.conns {
		_ = c.Close()
	}
}

func (p *proxy) close() {
	_ = p.ln.Close()
	p.setTarget("")
}
