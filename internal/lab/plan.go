// Package lab drives a real multi-site Kubernetes cluster on one machine:
// one network namespace per site with its own containerd, real kubelet and
// kube-proxy (iptables mode), the real kube-controller-manager and CoreDNS in
// a control-plane namespace beside an embedded etcd and kube-apiserver, and
// WAN links shaped to the topology's RTTs by ning's NFQUEUE delayer. ning
// itself is installed into it from deploy/helm/ning (docs/lab.md).
//
// The lab runs as a daemon (`ning lab up` starts it and returns once the
// cluster is ready); `ning lab site|link` drive faults through its control
// socket, and `ning lab down` (or the next `ning lab up`) removes everything
// it created, also after the daemon was killed.
package lab

import (
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/ning-edge/ning/internal/topology"
)

// Paths and names everything the lab creates lives under, so that Clean finds
// it without any state file.
const (
	// StateDir holds the containerd roots, kubelet root directories, logs
	// and kubeconfigs.
	StateDir = "/var/lib/ning-lab"
	// RunDir holds the sockets and containerd's state directories.
	RunDir = "/run/ning-lab"
	// NetnsPrefix starts the name of every network namespace of the lab.
	NetnsPrefix = "nlab-"
	// Bridge is the host bridge that joins the namespaces.
	Bridge = "nlab0"
	// CgroupPrefix starts the name of every cgroup the lab creates, in
	// every cgroup v1 hierarchy.
	CgroupPrefix = "ning-lab-"
	// ControlSocket is the daemon's control socket.
	ControlSocket = RunDir + "/lab.sock"
	// Kubeconfig is the admin kubeconfig of a running lab.
	Kubeconfig = StateDir + "/kubeconfig"

	// MaxSites bounds a topology: each site costs about 250 MB and 3 % of a
	// core at idle (kubelet, containerd, kube-proxy, ning's prober).
	MaxSites = 8
	// ControlNetns is the control plane's namespace.
	ControlNetns = NetnsPrefix + "cp"
	// ControlIP is the control plane's address on the bridge; HostIP is the
	// host's.
	ControlIP = "10.77.0.2"
	HostIP    = "10.77.0.1"
	// ServiceCIDR, the kubernetes Service's IP and the cluster DNS IP.
	ServiceCIDR  = "10.96.0.0/16"
	APIServiceIP = "10.96.0.1"
	DNSServiceIP = "10.96.0.10"
	// PodCIDR covers every node's pod subnet.
	PodCIDR = "10.78.0.0/16"
	// APIPort is the apiserver's port on ControlIP.
	APIPort = 6443
)

// Site is one site of the lab and its single node.
type Site struct {
	Name  string
	Index int // 1-based: addresses and queue numbers derive from it
	// Cloud marks the site whose nodes carry kubernetes.io/role=cloud.
	Cloud bool
}

// Netns is the site's network namespace.
func (s Site) Netns() string { return fmt.Sprintf("%ss%d", NetnsPrefix, s.Index) }

// Node is the name of the site's node.
func (s Site) Node() string { return s.Name + "-1" }

// NodeIP is the node's address on the bridge.
func (s Site) NodeIP() string { return fmt.Sprintf("10.77.%d.1", s.Index) }

// NodeNet is the /24 of the bridge the site's node addresses come from.
func (s Site) NodeNet() string { return fmt.Sprintf("10.77.%d.0/24", s.Index) }

// PodNet is the node's pod subnet.
func (s Site) PodNet() string { return fmt.Sprintf("10.78.%d.0/24", s.Index) }

// HostVeth is the host end of the site's veth.
func (s Site) HostVeth() string { return fmt.Sprintf("nlabh%d", s.Index) }

// Cgroup is the kubelet's cgroupRoot (the same name in every hierarchy).
func (s Site) Cgroup() string { return fmt.Sprintf("%ss%d", CgroupPrefix, s.Index) }

// Dir is the site's state directory; Run its runtime directory.
func (s Site) Dir() string { return fmt.Sprintf("%s/sites/%s", StateDir, s.Name) }

// Run is the site's runtime directory (sockets, containerd state).
func (s Site) Run() string { return fmt.Sprintf("%s/%s", RunDir, s.Name) }

// Plan is a lab's layout: its sites and the RTTs between them and to the
// control plane.
type Plan struct {
	Sites []Site
	// RTT[i][j] is the round trip between Sites[i] and Sites[j].
	RTT [][]time.Duration
	// ControlRTT[i] is the round trip between Sites[i] and the control plane.
	ControlRTT []time.Duration
	// ControlSite names the site the control plane sits beside ("" if none).
	ControlSite string
	Spec        *topology.Spec
}

// NewPlan lays out spec. The control plane sits at controlSite (its RTT to
// each site is that site's RTT to controlSite); empty or absent, the links
// to it are not delayed.
func NewPlan(spec *topology.Spec, controlSite string) (*Plan, error) {
	if len(spec.Sites) > MaxSites {
		return nil, fmt.Errorf("topology has %d sites; the lab fits at most %d on this machine (each site runs a kubelet, containerd and kube-proxy)", len(spec.Sites), MaxSites)
	}
	m := spec.Matrix()
	p := &Plan{Spec: spec}
	ctrl := -1
	for i, s := range spec.Sites {
		if s.Nodes > 1 {
			return nil, fmt.Errorf("site %s has %d nodes: the lab runs one node per site (one kubelet per site namespace)", s.Name, s.Nodes)
		}
		if s.Name == controlSite {
			ctrl = i
		}
		p.Sites = append(p.Sites, Site{Name: s.Name, Index: i + 1, Cloud: s.Name == "cloud"})
	}
	if controlSite != "" && ctrl < 0 {
		return nil, fmt.Errorf("control-plane site %q is not in the topology", controlSite)
	}
	if ctrl >= 0 {
		p.ControlSite = controlSite
	}
	p.RTT = make([][]time.Duration, len(m))
	p.ControlRTT = make([]time.Duration, len(m))
	for i := range m {
		p.RTT[i] = make([]time.Duration, len(m))
		for j, v := range m[i] {
			if math.IsInf(v, 0) {
				return nil, fmt.Errorf("no RTT between %s and %s in the topology: the lab needs every pair", spec.Sites[i].Name, spec.Sites[j].Name)
			}
			p.RTT[i][j] = ms(v)
		}
		if ctrl >= 0 {
			p.ControlRTT[i] = ms(m[i][ctrl])
		}
	}
	return p, nil
}

func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

// Site returns the site named name.
func (p *Plan) Site(name string) (Site, error) {
	for _, s := range p.Sites {
		if s.Name == name {
			return s, nil
		}
	}
	return Site{}, fmt.Errorf("no site %q in the lab (sites: %v)", name, p.Spec.SiteNames())
}

// LoadPlan reads a topology file and lays it out.
func LoadPlan(file, controlSite string) (*Plan, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading the lab topology: %w", err)
	}
	spec, err := topology.ParseSpec(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return NewPlan(spec, controlSite)
}

// ErrNotRoot is returned by Check when the lab is not run as root.
var ErrNotRoot = errors.New("the lab needs root (network namespaces, cgroups, mounts): run it with sudo")
