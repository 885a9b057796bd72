package lab

import (
	"context"
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
	"go.etcd.io/etcd/server/v3/embed"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/devcluster"
	"github.com/ning-edge/ning/internal/netem"
)

// controlPlane is the embedded etcd and kube-apiserver, reached from the
// namespaces through a forwarder on ControlIP:APIPort in the control-plane
// namespace.
type controlPlane struct {
	etcd     *embed.Etcd
	stop     func()
	client   kubernetes.Interface
	config   *rest.Config
	listener net.Listener
	wg       sync.WaitGroup
}

// pki writes the apiserver's serving certificate (for every name and address
// clients use: the kubernetes Service IP, ControlIP, loopback) and the
// service-account key the controller manager signs legacy tokens with.
func pki() (certFile, keyFile, saKeyFile string, err error) {
	dir := filepath.Join(StateDir, "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", "", err
	}
	ips := []net.IP{net.ParseIP(APIServiceIP), net.ParseIP(ControlIP), net.ParseIP("127.0.0.1")}
	dns := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"}
	crt, key, err := cert.GenerateSelfSignedCertKey("ning-lab-apiserver", ips, dns)
	if err != nil {
		return "", "", "", fmt.Errorf("apiserver certificate: %w", err)
	}
	certFile, keyFile, saKeyFile = filepath.Join(dir, "apiserver.crt"), filepath.Join(dir, "apiserver.key"), filepath.Join(dir, "sa.key")
	sa, err := keyutil.MakeEllipticPrivateKeyPEM()
	if err != nil {
		return "", "", "", err
	}
	for f, b := range map[string][]byte{certFile: crt, keyFile: key, saKeyFile: sa} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			return "", "", "", err
		}
	}
	return certFile, keyFile, saKeyFile, nil
}

// startControlPlane starts etcd, the apiserver (RBAC on, the ServiceAccount
// admission plugin on, the lab's certificate) and the forwarder.
func (l *Lab) startControlPlane(ctx context.Context) error {
	certFile, keyFile, saKey, err := pki()
	if err != nil {
		return err
	}
	l.saKeyFile, l.caFile = saKey, certFile
	cp := &controlPlane{}
	l.cp = cp
	var etcdURL string
	if cp.etcd, etcdURL, err = devcluster.StartEtcd(ctx, filepath.Join(StateDir, "etcd"), false); err != nil {
		return err
	}
	storage := storagebackend.NewDefaultConfig(path.Join(uuid.New().String(), "registry"), nil)
	storage.Transport.ServerList = []string{etcdURL}
	flags := []string{
		"--tls-cert-file=" + certFile,
		"--tls-private-key-file=" + keyFile,
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--authorization-mode=RBAC",
		"--endpoint-reconciler-type=none",
		"--kubelet-preferred-address-types=InternalIP",
		"--allow-privileged=true",
	}
	api, err := devcluster.StartAPIServer(ctx, filepath.Join(StateDir, "apiserver"), storage, flags)
	if err != nil {
		return fmt.Errorf("starting kube-apiserver: %w", err)
	}
	cp.stop = func() { _ = api.Stop() }
	cp.config = rest.CopyConfig(api.Config)
	if cp.client, err = kubernetes.NewForConfig(cp.config); err != nil {
		return err
	}
	ca, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	// Every lab client (the host's kubectl, kubelets, kube-proxy, the
	// controller manager, CoreDNS) reaches the apiserver at ControlIP with
	// the lab's CA and the apiserver's own privileged token.
	kc := kubeconfig(fmt.Sprintf("https://%s:%d", ControlIP, APIPort), ca, cp.config.BearerToken)
	if err := clientcmd.WriteToFile(*kc, Kubeconfig); err != nil {
		return err
	}
	b, err := clientcmd.Write(*kc)
	if err != nil {
		return err
	}
	l.componentKubeconfig = string(b)
	upstream := cp.config.Host
	u, err := url.Parse(upstream)
	if err != nil {
		return err
	}
	nl, err := netem.NewLab("")
	if err != nil {
		return err
	}
	if err := nl.Do(ControlNetns, func() (err error) {
		cp.listener, err = net.Listen("tcp", net.JoinHostPort(ControlIP, strconv.Itoa(APIPort)))
		return err
	}); err != nil {
		return fmt.Errorf("apiserver forwarder: %w", err)
	}
	cp.wg.Add(1)
	go func() { defer cp.wg.Done(); forward(cp.listener, u.Host) }()
	return l.clusterServices(ctx)
}

// forward copies each connection accepted on ln to upstream until ln closes.
func forward(ln net.Listener, upstream string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer func() { _ = c.Close() }()
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				return
			}
			defer func() { _ = u.Close() }()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
			<-done
		}()
	}
}

func kubeconfig(server string, ca []byte, token string) *clientcmdapi.Config {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["ning-lab"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	kc.AuthInfos["ning-lab-admin"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["ning-lab"] = &clientcmdapi.Context{Cluster: "ning-lab", AuthInfo: "ning-lab-admin"}
	kc.CurrentContext = "ning-lab"
	return kc
}

// clusterServices points the kubernetes Service at the forwarder and creates
// the cluster DNS Service (kube-system/kube-dns on DNSServiceIP) in front of
// CoreDNS on ControlIP: both are selectorless Services with an EndpointSlice
// the lab owns.
func (l *Lab) clusterServices(ctx context.Context) error {
	c := l.cp.client
	if err := waitFor(ctx, "the kubernetes Service", 60*time.Second, func(ctx context.Context) error {
		_, err := c.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		return err
	}); err != nil {
		return err
	}
	if err := waitFor(ctx, "the kube-system namespace", 60*time.Second, func(ctx context.Context) error {
		_, err := c.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
		return err
	}); err != nil {
		return err
	}
	dns := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system", Labels: map[string]string{"k8s-app": "kube-dns"}},
		Spec: v1.ServiceSpec{ClusterIP: DNSServiceIP, Ports: []v1.ServicePort{
			{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
			{Name: "dns-tcp", Port: 53, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
		}},
	}
	if _, err := c.CoreV1().Services("kube-system").Create(ctx, dns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("kube-dns Service: %w", err)
	}
	slices := []*discoveryv1.EndpointSlice{
		endpointSlice("default", "kubernetes", discoveryv1.EndpointPort{Name: ptr.To("https"), Port: ptr.To[int32](APIPort), Protocol: ptr.To(v1.ProtocolTCP)}),
		endpointSlice("kube-system", "kube-dns",
			discoveryv1.EndpointPort{Name: ptr.To("dns"), Port: ptr.To[int32](53), Protocol: ptr.To(v1.ProtocolUDP)},
			discoveryv1.EndpointPort{Name: ptr.To("dns-tcp"), Port: ptr.To[int32](53), Protocol: ptr.To(v1.ProtocolTCP)}),
	}
	for _, s := range slices {
		if _, err := c.DiscoveryV1().EndpointSlices(s.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("EndpointSlice %s/%s: %w", s.Namespace, s.Name, err)
		}
	}
	return nil
}

func endpointSlice(ns, svc string, ports ...discoveryv1.EndpointPort) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: svc + "-ning-lab", Namespace: ns, Labels: map[string]string{
			discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: "ning-lab"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ControlIP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       ports,
	}
}

// corefile serves the cluster domain from the API and nothing else (the
// machine has no upstream resolver to forward to).
func corefile() string {
	return fmt.Sprintf(`.:53 {
    bind %s
    errors
    health %s:8080
    ready %s:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s ning-lab
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
`, ControlIP, ControlIP, ControlIP, Kubeconfig)
}

// startControllers starts the real kube-controller-manager and CoreDNS in
// the control-plane namespace.
func (l *Lab) startControllers(ctx context.Context) error {
	if err := writeFile(StateDir+"/Corefile", corefile()); err != nil {
		return err
	}
	if err := l.procs.start("kube-controller-manager", ControlNetns, filepath.Join(l.cfg.BinDir, "kube-controller-manager"),
		"--kubeconfig="+Kubeconfig,
		"--authentication-kubeconfig="+Kubeconfig,
		"--authorization-kubeconfig="+Kubeconfig,
		"--bind-address="+ControlIP,
		"--leader-elect=false",
		"--controllers=*",
		"--root-ca-file="+l.caFile,
		"--service-account-private-key-file="+l.saKeyFile,
		"--use-service-account-credentials=false",
		"--service-cluster-ip-range="+ServiceCIDR,
		"--cluster-cidr="+PodCIDR,
		"--allocate-node-cidrs=false",
		"--v=1",
	); err != nil {
		return err
	}
	return l.procs.start("coredns", ControlNetns, filepath.Join(l.cfg.BinDir, "coredns"), "-conf", StateDir+"/Corefile")
}

func (cp *controlPlane) close() {
	if cp.listener != nil {
		_ = cp.listener.Close()
	}
	if cp.stop != nil {
		cp.stop()
	}
	if cp.etcd != nil {
		cp.etcd.Close()
	}
}
