package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Config is a lab's configuration.
type Config struct {
	// Topology is the topology file.
	Topology string
	// ControlSite is the site the control plane sits beside.
	ControlSite string
	// BinDir holds the node binaries and images/ (make lab-bins images).
	BinDir string
	// Chart is deploy/helm/ning; Values the lab's values files,
	// comma-separated (a later one overrides an earlier). Empty Chart: ning
	// is not installed.
	Chart, Values string
	// UnprivilegedICMP sets containerd's enable_unprivileged_icmp.
	UnprivilegedICMP bool
	Log              *slog.Logger
}

// Lab is a running lab (inside the daemon).
type Lab struct {
	cfg      Config
	plan     *Plan
	log      *slog.Logger
	nodeOpts nodeOptions
	procs    *procs
	shaper   *shaper
	cp       *controlPlane

	caFile, saKeyFile   string
	componentKubeconfig string

	mu       sync.Mutex
	imported map[string]bool
	stopped  map[string]bool
	faults   map[string]Fault
	phases   []Phase
	began    time.Time
}

// Phase is one step of the bring-up and how long it took.
type Phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// Up brings a lab up: it cleans what an earlier lab left, checks the
// prerequisites, and starts everything. On error the caller runs Close.
func Up(ctx context.Context, cfg Config) (*Lab, error) {
	plan, err := LoadPlan(cfg.Topology, cfg.ControlSite)
	if err != nil {
		return nil, err
	}
	if err := Check(plan, cfg.BinDir); err != nil {
		return nil, err
	}
	// The lab's processes run in StateDir: a relative --bin-dir (make
	// lab-up's bin/lab) must not be resolved there.
	if cfg.BinDir, err = filepath.Abs(cfg.BinDir); err != nil {
		return nil, fmt.Errorf("--bin-dir: %w", err)
	}
	l := &Lab{cfg: cfg, plan: plan, log: cfg.Log, procs: newProcs(), shaper: newShaper(),
		nodeOpts: nodeOptions{binDir: cfg.BinDir, unprivilegedICMP: cfg.UnprivilegedICMP},
		imported: map[string]bool{}, stopped: map[string]bool{}, faults: map[string]Fault{}, began: time.Now()}
	return l, l.up(ctx)
}

func (l *Lab) phase(name string, f func() error) error {
	t0 := time.Now()
	l.log.Info("lab: " + name)
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	l.mu.Lock()
	l.phases = append(l.phases, Phase{Name: name, Seconds: round1(time.Since(t0).Seconds())})
	l.mu.Unlock()
	return nil
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }

func (l *Lab) up(ctx context.Context) error {
	p := l.plan
	for _, d := range []string{StateDir + "/logs", RunDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := writeFile(StateDir+"/resolv.conf", "# the lab has no upstream resolver\nnameserver "+DNSServiceIP+"\n"); err != nil {
		return err
	}
	if err := l.phase("network", func() error {
		if err := setupBridge(ctx, p); err != nil {
			return err
		}
		if err := addNamespace(ctx, p, ControlNetns, "nlabhcp", ControlIP, 0); err != nil {
			return err
		}
		for i, s := range p.Sites {
			if err := addNamespace(ctx, p, s.Netns(), s.HostVeth(), s.NodeIP(), s.Index); err != nil {
				return err
			}
			if err := l.shaper.shapeSite(p, i); err != nil {
				return err
			}
			if err := setupSiteRules(ctx, p, s); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := l.phase("control plane (etcd, kube-apiserver)", func() error { return l.startControlPlane(ctx) }); err != nil {
		return err
	}
	if err := l.phase("kube-controller-manager, kube-scheduler and CoreDNS", func() error {
		if err := l.startControllers(ctx); err != nil {
			return err
		}
		return l.startDefaultScheduler(ctx)
	}); err != nil {
		return err
	}
	if err := l.phase("nodes (containerd, images, kubelet, kube-proxy)", func() error {
		errs := make([]error, len(p.Sites))
		var wg sync.WaitGroup
		for i, s := range p.Sites {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = l.startNode(ctx, s) }()
		}
		wg.Wait()
		return errors.Join(errs...)
	}); err != nil {
		return err
	}
	if err := l.phase("nodes Ready", func() error { return l.waitNodesReady(ctx, 3*time.Minute) }); err != nil {
		return err
	}
	if l.cfg.Chart != "" {
		if err := l.phase("ning from its Helm chart", func() error { return l.installNing(ctx) }); err != nil {
			return err
		}
	}
	l.mu.Lock()
	l.phases = append(l.phases, Phase{Name: "total", Seconds: round1(time.Since(l.began).Seconds())})
	l.mu.Unlock()
	return nil
}

// waitNodesReady waits until every site's node is Ready, then labels the
// cloud site's node kubernetes.io/role=cloud (the kubelet may not set
// kubernetes.io labels itself).
func (l *Lab) waitNodesReady(ctx context.Context, timeout time.Duration) error {
	c := l.cp.client
	err := waitFor(ctx, "every node Ready", timeout, func(ctx context.Context) error {
		if err := l.procs.exited(); err != nil {
			return errors.Join(errStop, err)
		}
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		ready := map[string]bool{}
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == v1.NodeReady && cond.Status == v1.ConditionTrue {
					ready[n.Name] = true
				}
			}
		}
		var missing []string
		for _, s := range l.plan.Sites {
			if !ready[s.Node()] && !l.isStopped(s.Name) {
				missing = append(missing, s.Node())
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("not Ready: %s", strings.Join(missing, ", "))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, s := range l.plan.Sites {
		if !s.Cloud {
			continue
		}
		patch := []byte(`{"metadata":{"labels":{"kubernetes.io/role":"cloud"}}}`)
		if _, err := c.CoreV1().Nodes().Patch(ctx, s.Node(), types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("labelling %s: %w", s.Node(), err)
		}
	}
	return nil
}

var errStop = errors.New("a lab process exited")

func (l *Lab) isStopped(site string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stopped[site]
}

// Close stops everything and removes what the lab created.
func (l *Lab) Close(ctx context.Context) ([]string, error) {
	if l.shaper != nil {
		l.shaper.stop()
	}
	names := make([]string, 0)
	for n := range l.procs.pids() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		_ = l.procs.kill(n, 15, 5*time.Second)
	}
	if l.cp != nil {
		l.cp.close()
	}
	return Clean(ctx)
}

// SiteAction powers a site off or on, or cuts or restores its links, and
// says what it did.
func (l *Lab) SiteAction(ctx context.Context, site, action string) ([]string, error) {
	s, err := l.plan.Site(site)
	if err != nil {
		return nil, err
	}
	switch action {
	case "stop":
		if l.isStopped(site) {
			return []string{"site " + site + " is already stopped"}, nil
		}
		did, err := l.stopSite(ctx, s)
		l.mu.Lock()
		l.stopped[site] = true
		l.mu.Unlock()
		return append([]string{"site " + site + " powered off:"}, did...), err
	case "start":
		if !l.isStopped(site) {
			return []string{"site " + site + " is already running"}, nil
		}
		l.mu.Lock()
		delete(l.stopped, site)
		f := l.faults[site]
		l.mu.Unlock()
		if err := setFault(ctx, s, f); err != nil {
			return nil, err
		}
		if err := l.startNode(ctx, s); err != nil {
			return nil, err
		}
		return []string{"site " + site + ": started containerd, kubelet and kube-proxy on node " + s.Node()}, nil
	case "cut-control", "isolate", "restore":
		f := map[string]Fault{"cut-control": FaultControl, "isolate": FaultIsolate, "restore": FaultNone}[action]
		if l.isStopped(site) {
			l.mu.Lock()
			l.faults[site] = f
			l.mu.Unlock()
			return []string{"site " + site + " is powered off: its links take this state (" + action + ") when it starts"}, nil
		}
		if err := setFault(ctx, s, f); err != nil {
			return nil, err
		}
		l.mu.Lock()
		l.faults[site] = f
		l.mu.Unlock()
		return []string{map[Fault]string{
			FaultControl: "site " + site + ": dropping its traffic to and from the control plane (" + ControlIP + "); its links to other sites stay up",
			FaultIsolate: "site " + site + ": dropping everything on its WAN link (control plane and every other site)",
			FaultNone:    "site " + site + ": every link restored",
		}[f]}, nil
	}
	return nil, fmt.Errorf("site action %q: want stop, start, cut-control, isolate or restore", action)
}

// SetLink sets the RTT between two sites (each direction half of it).
func (l *Lab) SetLink(a, b string, rtt time.Duration) ([]string, error) {
	if rtt < 0 || rtt > 10*time.Second {
		return nil, fmt.Errorf("--rtt %s: want 0..10s", rtt)
	}
	sa, err := l.plan.Site(a)
	if err != nil {
		return nil, err
	}
	sb, err := l.plan.Site(b)
	if err != nil {
		return nil, err
	}
	if sa.Index == sb.Index {
		return nil, fmt.Errorf("link %s-%s: a site has no link to itself", a, b)
	}
	old := l.plan.RTT[sa.Index-1][sb.Index-1]
	if err := l.shaper.set(sa.Netns(), queueTo(sb.Index), rtt/2); err != nil {
		return nil, err
	}
	if err := l.shaper.set(sb.Netns(), queueTo(sa.Index), rtt/2); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.plan.RTT[sa.Index-1][sb.Index-1], l.plan.RTT[sb.Index-1][sa.Index-1] = rtt, rtt
	l.mu.Unlock()
	return []string{fmt.Sprintf("link %s-%s: RTT %s -> %s (%s each way)", a, b, old, rtt, rtt/2)}, nil
}

// Status is what the daemon reports about a running lab.
type Status struct {
	Ready      bool               `json:"ready"`
	Error      string             `json:"error,omitempty"`
	Kubeconfig string             `json:"kubeconfig"`
	Sites      []SiteStatus       `json:"sites"`
	Phases     []Phase            `json:"phases"`
	Pids       map[string]int     `json:"pids"`
	RTTms      map[string]float64 `json:"rttMs"`
}

// SiteStatus is one site's state.
type SiteStatus struct {
	Name   string `json:"name"`
	Node   string `json:"node"`
	NodeIP string `json:"nodeIP"`
	PodNet string `json:"podNet"`
	Netns  string `json:"netns"`
	Cgroup string `json:"cgroup"`
	// Power is on or off; Links is up, control-cut or isolated.
	Power string `json:"power"`
	Links string `json:"links"`
}

func (l *Lab) status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := Status{Kubeconfig: Kubeconfig, Phases: append([]Phase(nil), l.phases...), Pids: l.procs.pids(), RTTms: map[string]float64{}}
	for i, s := range l.plan.Sites {
		power, links := "on", map[Fault]string{FaultNone: "up", FaultControl: "control-cut", FaultIsolate: "isolated"}[l.faults[s.Name]]
		if l.stopped[s.Name] {
			power = "off"
		}
		st.Sites = append(st.Sites, SiteStatus{Name: s.Name, Node: s.Node(), NodeIP: s.NodeIP(), PodNet: s.PodNet(), Netns: s.Netns(), Cgroup: s.Cgroup(), Power: power, Links: links})
		for j, o := range l.plan.Sites {
			if j > i {
				st.RTTms[s.Name+"-"+o.Name] = float64(l.plan.RTT[i][j]) / float64(time.Millisecond)
			}
		}
		st.RTTms[s.Name+"-control-plane"] = float64(l.plan.ControlRTT[i]) / float64(time.Millisecond)
	}
	return st
}
