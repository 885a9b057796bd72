package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/ning-edge/ning/internal/topology"
)

func spec(t *testing.T, text string) *topology.Spec {
	t.Helper()
	s, err := topology.ParseSpec([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewPlan(t *testing.T) {
	three := `sites:
  - {name: a, nodes: 1}
  - {name: b}
  - {name: cloud}
latencyMs:
  a: {b: 10, cloud: 20}
  b: {cloud: 30}
`
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	var nine strings.Builder
	nine.WriteString("sites:\n")
	for i := range MaxSites + 1 {
		fmt.Fprintf(&nine, "  - {name: s%d}\n", i)
	}
	for _, tc := range []struct {
		name, spec, control string
		wantSites           []Site
		wantRTT             [][]time.Duration
		wantControl         []time.Duration
		wantErr             string
	}{
		{name: "control beside cloud", spec: three, control: "cloud",
			wantSites:   []Site{{Name: "a", Index: 1}, {Name: "b", Index: 2}, {Name: "cloud", Index: 3, Cloud: true}},
			wantRTT:     [][]time.Duration{ms(0, 10, 20), ms(10, 0, 30), ms(20, 30, 0)},
			wantControl: ms(20, 30, 0)},
		{name: "control undelayed", spec: three, control: "",
			wantSites:   []Site{{Name: "a", Index: 1}, {Name: "b", Index: 2}, {Name: "cloud", Index: 3, Cloud: true}},
			wantRTT:     [][]time.Duration{ms(0, 10, 20), ms(10, 0, 30), ms(20, 30, 0)},
			wantControl: ms(0, 0, 0)},
		{name: "control site unknown", spec: three, control: "mars", wantErr: `control-plane site "mars" is not in the topology`},
		{name: "too many sites", spec: nine.String(), wantErr: fmt.Sprintf("topology has %d sites; the lab fits at most %d", MaxSites+1, MaxSites)},
		{name: "two nodes in a site", spec: "sites:\n  - {name: a, nodes: 2}\n", wantErr: "site a has 2 nodes: the lab runs one node per site"},
		{name: "a pair without RTT", spec: "sites:\n  - {name: a}\n  - {name: b}\n  - {name: c}\nlatencyMs:\n  a: {b: 1, c: 2}\n", wantErr: "no RTT between b and c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPlan(spec(t, tc.spec), tc.control)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NewPlan: %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantSites, p.Sites); diff != "" {
				t.Errorf("sites (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantRTT, p.RTT); diff != "" {
				t.Errorf("RTT (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantControl, p.ControlRTT); diff != "" {
				t.Errorf("control RTT (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDefaultTopologyFits checks the lab's default topology lays out.
func TestDefaultTopologyFits(t *testing.T) {
	p, err := LoadPlan("../../test/lab/topology.yaml", "cloud")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Sites) < 4 || len(p.Sites) > 5 {
		t.Errorf("%d sites in the default topology, want 4-5 (issue 15)", len(p.Sites))
	}
	if _, err := p.Site("cloud"); err != nil {
		t.Error(err)
	}
	if _, err := p.Site("mars"); err == nil || !strings.Contains(err.Error(), `no site "mars"`) {
		t.Errorf("Site(mars): %v", err)
	}
}

func TestSiteNames(t *testing.T) {
	s := Site{Name: "airport", Index: 2}
	got := []string{s.Netns(), s.Node(), s.NodeIP(), s.NodeNet(), s.PodNet(), s.HostVeth(), s.Cgroup(), s.Dir(), s.Run()}
	want := []string{"nlab-s2", "airport-1", "10.77.2.1", "10.77.2.0/24", "10.78.2.0/24", "nlabh2", "ning-lab-s2",
		"/var/lib/ning-lab/sites/airport", "/run/ning-lab/airport"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
}

// TestAddressPlan checks that every site of the largest lab gets its own
// node address on the bridge and its own pod subnet, that none of them
// overlaps the control plane, the host, the Services or another site, and
// that every name the cleaner looks for carries the lab's prefix.
func TestAddressPlan(t *testing.T) {
	bridge := netip.MustParsePrefix(HostIP + "/16")
	pods := netip.MustParsePrefix(PodCIDR)
	services := netip.MustParsePrefix(ServiceCIDR)
	for _, a := range []string{APIServiceIP, DNSServiceIP} {
		if !services.Contains(netip.MustParseAddr(a)) {
			t.Errorf("%s is not in the Service range %s", a, services)
		}
	}
	if bridge.Overlaps(pods) || bridge.Overlaps(services) || pods.Overlaps(services) {
		t.Errorf("bridge %s, pods %s and Services %s overlap", bridge, pods, services)
	}
	used := map[netip.Addr]string{netip.MustParseAddr(HostIP): "host", netip.MustParseAddr(ControlIP): "control plane"}
	var subnets []netip.Prefix
	for i := 1; i <= MaxSites; i++ {
		s := Site{Name: fmt.Sprintf("s%d", i), Index: i}
		ip := netip.MustParseAddr(s.NodeIP())
		if !bridge.Contains(ip) || !netip.MustParsePrefix(s.NodeNet()).Contains(ip) {
			t.Errorf("site %d: node IP %s outside the bridge %s or its /24 %s", i, ip, bridge, s.NodeNet())
		}
		if other, ok := used[ip]; ok {
			t.Errorf("site %d: node IP %s is also %s", i, ip, other)
		}
		used[ip] = s.Name
		pn := netip.MustParsePrefix(s.PodNet())
		if !pods.Contains(pn.Addr()) || pn.Bits() != 24 {
			t.Errorf("site %d: pod subnet %s not a /24 in %s", i, pn, pods)
		}
		for _, o := range subnets {
			if o.Overlaps(pn) {
				t.Errorf("site %d: pod subnet %s overlaps %s", i, pn, o)
			}
		}
		subnets = append(subnets, pn)
		for _, name := range []string{s.Netns(), s.HostVeth(), s.Cgroup()} {
			if !strings.HasPrefix(name, NetnsPrefix) && !strings.HasPrefix(name, "nlabh") && !strings.HasPrefix(name, CgroupPrefix) {
				t.Errorf("site %d: %s does not carry a prefix the cleaner looks for", i, name)
			}
		}
		if len(s.HostVeth()) > 15 {
			t.Errorf("site %d: interface name %s longer than the kernel's 15 characters", i, s.HostVeth())
		}
	}
}

func TestCheckMemory(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		sites     int
		available uint64
		wantErr   string
	}{
		{sites: 4, available: 24 << 30},
		{sites: MaxSites, available: NeedBytes(MaxSites)},
		{sites: 4, available: NeedBytes(4) - mib, wantErr: fmt.Sprintf("topology too large for this machine: 4 sites need about %d MiB, %d MiB available", NeedBytes(4)/mib, NeedBytes(4)/mib-1)},
		{sites: 1, available: 512 * mib, wantErr: "1 sites need about"},
	} {
		err := checkMemory(tc.sites, tc.available)
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("checkMemory(%d, %d MiB): %v, want %q", tc.sites, tc.available/mib, err, tc.wantErr)
		}
	}
}

// TestCheckNamesWhatIsMissing runs Check against an empty bin directory: it
// must name every binary and image, with the make target that builds it, in
// one error.
func TestCheckNamesWhatIsMissing(t *testing.T) {
	p, err := NewPlan(spec(t, "sites:\n  - {name: a}\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	err = Check(p, t.TempDir())
	if err == nil {
		t.Fatal("Check passed with an empty bin directory")
	}
	for _, b := range Binaries {
		if want := b + " not found in "; !strings.Contains(err.Error(), want) {
			t.Errorf("Check does not name the missing binary %s: %v", b, err)
		}
	}
	for _, im := range Images {
		if want := "image " + im + ".tar not found"; !strings.Contains(err.Error(), want) {
			t.Errorf("Check does not name the missing image %s: %v", im, err)
		}
	}
	for _, target := range []string{"run make lab-bins", "run make images"} {
		if !strings.Contains(err.Error(), target) {
			t.Errorf("Check does not say %q: %v", target, err)
		}
	}
	if got, want := errors.Is(err, ErrNotRoot), os.Geteuid() != 0; got != want {
		t.Errorf("Check's error is ErrNotRoot: %t, want %t (euid %d)", got, want, os.Geteuid())
	}
}

// TestNodeConfigs decodes the generated kubelet configuration strictly into
// the kubelet's own type (a misspelt field fails), checks the heartbeat
// settings against the lab's values, and that the CNI configuration is JSON
// on the site's subnet.
func TestNodeConfigs(t *testing.T) {
	s := Site{Name: "airport", Index: 2}
	var kc kubeletv1beta1.KubeletConfiguration
	if err := yaml.UnmarshalStrict([]byte(kubeletConfig(s)), &kc); err != nil {
		t.Fatalf("kubelet configuration: %v", err)
	}
	if kc.Kind != "KubeletConfiguration" || kc.CgroupRoot != "/"+s.Cgroup() || kc.Address != s.NodeIP() {
		t.Errorf("kubelet configuration: kind %q, cgroupRoot %q, address %q", kc.Kind, kc.CgroupRoot, kc.Address)
	}
	// The kubelet renews its Lease every quarter of the lease duration
	// (k8s.io/component-helpers/apimachinery/lease); the rescheduler takes
	// a node for down after nodeDownAfter without a renewal.
	renew := time.Duration(kc.NodeLeaseDurationSeconds) * time.Second / 4
	var values struct {
		Rescheduler struct {
			NodeDownAfter string `json:"nodeDownAfter"`
		} `json:"rescheduler"`
	}
	b, err := os.ReadFile("../../test/lab/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	down, err := time.ParseDuration(values.Rescheduler.NodeDownAfter)
	if err != nil {
		t.Fatalf("lab values rescheduler.nodeDownAfter: %v", err)
	}
	if renew <= 0 || down < 3*renew {
		t.Errorf("lab kubelets renew their Lease every %s; the rescheduler's nodeDownAfter %s is less than three renewals: a slow renewal would fail a healthy node", renew, down)
	}
	if down+2*renew > 15*time.Second {
		t.Errorf("nodeDownAfter %s with a renewal every %s leaves too little of the 30 s recovery for the replacement to start", down, renew)
	}
	var cni struct {
		Plugins []struct {
			Type string `json:"type"`
			IPAM struct {
				Ranges [][]struct {
					Subnet string `json:"subnet"`
				} `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(cniConfig(s)), &cni); err != nil {
		t.Fatalf("CNI configuration: %v", err)
	}
	if len(cni.Plugins) == 0 || cni.Plugins[0].Type != "bridge" || cni.Plugins[0].IPAM.Ranges[0][0].Subnet != s.PodNet() {
		t.Errorf("CNI configuration: %+v, want the bridge plugin on %s", cni, s.PodNet())
	}
	var kp map[string]any
	if err := yaml.UnmarshalStrict([]byte(kubeProxyConfig(s)), &kp); err != nil || kp["mode"] != "iptables" {
		t.Errorf("kube-proxy configuration: %v, mode %v", err, kp["mode"])
	}
}

// TestWaitForStopsOnExit: a wait gives up at the first look that finds a lab
// process exited, rather than at its timeout.
func TestWaitForStopsOnExit(t *testing.T) {
	looks := 0
	err := waitFor(context.Background(), "every node Ready", time.Hour, func(context.Context) error {
		looks++
		return errors.Join(errStop, errors.New("airport-kubelet exited: exit status 127"))
	})
	if !errors.Is(err, errStop) || !strings.Contains(err.Error(), "airport-kubelet exited") || looks != 1 {
		t.Errorf("waitFor: %v after %d looks, want the exit after 1", err, looks)
	}
}
