package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// nodeOptions are the settings every node of a lab shares.
type nodeOptions struct {
	binDir string
	// unprivilegedICMP is containerd's enable_unprivileged_icmp: false is
	// containerd 1.6's default, true 2.x's.
	unprivilegedICMP bool
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

// containerdConfig is a site's containerd configuration: a private root,
// state and sockets, CNI from CNIDir with the site's own conf_dir, the lab's
// pause image, and restrict_oom_score_adj (this machine refuses negative
// oom_score_adj: without it every sandbox fails with "can't get final
// child's PID from pipe: EOF"), and the pods' network namespaces under the
// site's state (netns_mounts_under_state_dir), so that lab down removes them
// with RunDir: under /var/run/netns they outlived the lab once their veth
// died with the node's namespace, with no lab address left to know them by.
func containerdConfig(s Site, o nodeOptions) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  enable_unprivileged_icmp = %t
  enable_unprivileged_ports = true
  netns_mounts_under_state_dir = true
  stream_server_address = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
`, s.Dir()+"/containerd", s.Run()+"/containerd", containerdSock(s), containerdSock(s)+".ttrpc",
		PauseImage, o.unprivilegedICMP, s.NodeIP(), CNIDir, s.Dir()+"/cni")
}

// PauseImage is the sandbox image's reference (test/lab/tools/images).
const PauseImage = "registry.k8s.io/pause:ning-lab"

func containerdSock(s Site) string { return s.Run() + "/containerd.sock" }

// cniConfig is a site's CNI network: a bridge with host-local IPAM on the
// node's pod subnet, state in the site's directory, and portmap.
func cniConfig(s Site) string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "nlab",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, s.PodNet(), s.Dir()+"/cni-ipam")
}

// kubeletConfig is a site's KubeletConfiguration: cgroupfs on cgroup v1
// (failCgroupV1 false) under the site's own cgroupRoot, serving on the node
// IP, anonymous AlwaysAllow (a lab), DNS from the cluster's CoreDNS,
// eviction thresholds low enough for a shared disk, and heartbeats fit for
// a 30 s recovery: the kubelet renews its Lease every quarter of
// nodeLeaseDurationSeconds (8 s: every 2 s, against the default's 10 s), so
// the rescheduler's nodeDownAfter in the lab's values (8 s) is four missed
// renewals; the node status is computed every 4 s (default 10 s) and still
// posted only on a change or every nodeStatusReportFrequency.
func kubeletConfig(s Site) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
cgroupDriver: cgroupfs
cgroupRoot: /%s
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
clusterDNS: [%s]
clusterDomain: cluster.local
resolvConf: %s
maxPods: 40
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
nodeStatusUpdateFrequency: 4s
nodeLeaseDurationSeconds: 8
nodeStatusReportFrequency: 1m
syncFrequency: 30s
fileCheckFrequency: 30s
registerNode: true
rotateCertificates: false
serverTLSBootstrap: false
protectKernelDefaults: false
makeIPTablesUtilChains: true
localStorageCapacityIsolation: false
podLogsDir: %s
`, s.NodeIP(), s.Cgroup(), containerdSock(s), DNSServiceIP, StateDir+"/resolv.conf", s.Dir()+"/pod-logs")
}

// kubeProxyConfig is a site's kube-proxy configuration: iptables mode, bound
// to the node IP, conntrack sysctls left alone (the table size is global).
func kubeProxyConfig(s Site) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
bindAddress: %[1]s
healthzBindAddress: %[1]s:10256
metricsBindAddress: %[1]s:10249
hostnameOverride: %[2]s
clusterCIDR: %[3]s
clientConnection:
  kubeconfig: %[4]s
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, s.NodeIP(), s.Node(), PodCIDR, s.Dir()+"/kubeconfig")
}

// startNode writes a site's configuration and starts its containerd,
// imports the lab's images into it, and starts its kubelet and kube-proxy.
func (l *Lab) startNode(ctx context.Context, s Site) error {
	files := map[string]string{
		s.Dir() + "/containerd.toml":      containerdConfig(s, l.nodeOpts),
		s.Dir() + "/cni/10-nlab.conflist": cniConfig(s),
		s.Dir() + "/kubelet.yaml":         kubeletConfig(s),
		s.Dir() + "/kube-proxy.yaml":      kubeProxyConfig(s),
		s.Dir() + "/kubeconfig":           l.componentKubeconfig,
	}
	for path, content := range files {
		if err := writeFile(path, content); err != nil {
			return err
		}
	}
	for _, d := range []string{s.Run(), s.Dir() + "/kubelet", s.Dir() + "/cni-ipam"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := makeCgroup(s.Cgroup()); err != nil {
		return err
	}
	if err := l.procs.start(s.Name+"-containerd", s.Netns(), "containerd", "--config", s.Dir()+"/containerd.toml"); err != nil {
		return err
	}
	if err := waitFor(ctx, s.Name+"'s containerd", 30*time.Second, func(ctx context.Context) error {
		return run(ctx, "ctr", "-a", containerdSock(s), "version")
	}); err != nil {
		return err
	}
	if !l.imported[s.Name] {
		for _, im := range Images {
			if err := run(ctx, "ctr", "-a", containerdSock(s), "-n", "k8s.io", "images", "import",
				filepath.Join(l.cfg.BinDir, "images", im+".tar")); err != nil {
				return fmt.Errorf("site %s: importing image %s: %w", s.Name, im, err)
			}
		}
		l.imported[s.Name] = true
	}
	return l.startKubelet(s)
}

// startKubelet starts a site's kubelet and kube-proxy (its containerd runs).
func (l *Lab) startKubelet(s Site) error {
	labels := []string{"topology.kubernetes.io/zone=" + s.Name, "ning.io/lab-site=" + s.Name}
	if err := l.procs.start(s.Name+"-kubelet", s.Netns(), filepath.Join(l.cfg.BinDir, "kubelet"),
		"--config="+s.Dir()+"/kubelet.yaml",
		"--kubeconfig="+s.Dir()+"/kubeconfig",
		"--root-dir="+s.Dir()+"/kubelet",
		"--cert-dir="+s.Dir()+"/kubelet/pki",
		"--node-ip="+s.NodeIP(),
		"--hostname-override="+s.Node(),
		"--node-labels="+strings.Join(labels, ","),
		"--v=1",
	); err != nil {
		return err
	}
	return l.procs.start(s.Name+"-kube-proxy", s.Netns(), filepath.Join(l.cfg.BinDir, "kube-proxy"),
		"--config="+s.Dir()+"/kube-proxy.yaml", "--v=1")
}

// stopSite powers a site off: SIGKILL to its kubelet, kube-proxy and
// containerd, then to every process left in its namespace (the shims) and
// in its cgroups (the containers), and its WAN link dropped: the namespace's
// kernel would otherwise still answer pings for the node's address, which a
// machine without power does not.
func (l *Lab) stopSite(ctx context.Context, s Site) ([]string, error) {
	var did []string
	if err := setFault(ctx, s, FaultIsolate); err != nil {
		return did, err
	}
	did = append(did, "dropped everything on its WAN link")
	for _, c := range []string{"kubelet", "kube-proxy", "containerd"} {
		name := s.Name + "-" + c
		if pid, ok := l.procs.pids()[name]; ok {
			if err := l.procs.kill(name, 9, 5*time.Second); err != nil {
				return did, err
			}
			did = append(did, fmt.Sprintf("killed %s (pid %d)", c, pid))
		}
	}
	n, err := killNetns(s.Netns())
	if err != nil {
		return did, err
	}
	m, err := killCgroup(s.Cgroup())
	if err != nil {
		return did, err
	}
	did = append(did, fmt.Sprintf("killed %d shim and %d container processes", n, m))
	return did, nil
}
