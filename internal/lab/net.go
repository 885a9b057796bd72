package lab

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// run runs a command and returns its error with its output.
func execOutput(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

func run(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNetns runs a command in a named network namespace with nsenter --net,
// which keeps the host's /sys (ip netns exec remounts it and hides the
// cgroup hierarchies).
func inNetns(ctx context.Context, netns string, name string, args ...string) error {
	return run(ctx, "nsenter", append([]string{"--net=/var/run/netns/" + netns, "--", name}, args...)...)
}

// steps runs commands in order and stops at the first error.
func steps(ctx context.Context, cmds [][]string) error {
	for _, c := range cmds {
		if err := run(ctx, c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// setupBridge creates the host bridge with the host's address and routes to
// every pod subnet.
func setupBridge(ctx context.Context, p *Plan) error {
	cmds := [][]string{
		{"ip", "link", "add", Bridge, "type", "bridge"},
		{"ip", "addr", "add", HostIP + "/16", "dev", Bridge},
		{"ip", "link", "set", Bridge, "up"},
	}
	for _, s := range p.Sites {
		cmds = append(cmds, []string{"ip", "route", "add", s.PodNet(), "via", s.NodeIP()})
	}
	return steps(ctx, cmds)
}

// addNamespace creates netns joined to the bridge through a veth whose host
// end is hostVeth, with addr on its eth0, forwarding on, unprivileged ICMP
// open to every group, and routes to the other sites' pod subnets.
func addNamespace(ctx context.Context, p *Plan, netns, hostVeth, addr string, self int) error {
	cmds := [][]string{
		{"ip", "netns", "add", netns},
		{"ip", "link", "add", hostVeth, "type", "veth", "peer", "name", "eth0", "netns", netns},
		{"ip", "link", "set", hostVeth, "master", Bridge},
		{"ip", "link", "set", hostVeth, "up"},
		{"ip", "-n", netns, "link", "set", "lo", "up"},
		{"ip", "-n", netns, "addr", "add", addr + "/16", "dev", "eth0"},
		{"ip", "-n", netns, "link", "set", "eth0", "up"},
		// A route for the Service IPs, so that host-network pods (the
		// gateways) reach Services: kube-proxy's DNAT in OUTPUT comes
		// after the route lookup, which fails without one.
		{"ip", "-n", netns, "route", "add", ServiceCIDR, "dev", "eth0"},
	}
	for _, s := range p.Sites {
		if s.Index != self {
			cmds = append(cmds, []string{"ip", "-n", netns, "route", "add", s.PodNet(), "via", s.NodeIP()})
		}
	}
	if err := steps(ctx, cmds); err != nil {
		return err
	}
	for _, kv := range [][2]string{
		{"net.ipv4.ip_forward", "1"},
		{"net.ipv4.ping_group_range", "0 2147483647"},
		{"net.ipv4.conf.all.rp_filter", "0"},
	} {
		if err := inNetns(ctx, netns, "sysctl", "-qw", kv[0]+"="+kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// Chains of the lab's own iptables rules in each site namespace: the delay
// rules (mangle) and the fault rules (filter).
const (
	delayChain = "NLAB-DELAY"
	faultChain = "NLAB-FAULT"
)

// Queue numbers in a site namespace: queueTo(j) for packets to site j,
// queueCtlOut and queueCtlIn for the control plane's two directions.
func queueTo(j int) uint16 { return uint16(j) }

const (
	queueCtlOut uint16 = 100
	queueCtlIn  uint16 = 101
)

// setupSiteRules installs a site namespace's delay and fault chains: every
// packet leaving eth0 for another site goes to that site's queue, and every
// packet to or from the control plane to the control queues.
func setupSiteRules(ctx context.Context, p *Plan, s Site) error {
	ipt := func(args ...string) []string {
		return append([]string{"nsenter", "--net=/var/run/netns/" + s.Netns(), "--", "iptables", "-w", "5"}, args...)
	}
	cmds := [][]string{
		ipt("-t", "mangle", "-N", delayChain),
		ipt("-t", "mangle", "-A", "POSTROUTING", "-o", "eth0", "-j", delayChain),
		ipt("-t", "mangle", "-A", "PREROUTING", "-i", "eth0", "-s", "10.77.0.0/24", "-j", "NFQUEUE", "--queue-num", fmt.Sprint(queueCtlIn)),
		ipt("-t", "mangle", "-A", delayChain, "-d", "10.77.0.0/24", "-j", "NFQUEUE", "--queue-num", fmt.Sprint(queueCtlOut)),
		ipt("-N", faultChain),
		ipt("-I", "INPUT", "-j", faultChain),
		ipt("-I", "OUTPUT", "-j", faultChain),
		ipt("-I", "FORWARD", "-j", faultChain),
	}
	for _, o := range p.Sites {
		if o.Index == s.Index {
			continue
		}
		for _, dst := range []string{o.NodeNet(), o.PodNet()} {
			cmds = append(cmds, ipt("-t", "mangle", "-A", delayChain, "-d", dst, "-j", "NFQUEUE", "--queue-num", fmt.Sprint(queueTo(o.Index))))
		}
	}
	return steps(ctx, cmds)
}

// Fault is what cuts a site off.
type Fault int

// The faults SetFault applies.
const (
	FaultNone Fault = iota
	// FaultControl drops the site's traffic to and from the control plane only.
	FaultControl
	// FaultIsolate drops everything the site sends or receives on its WAN link.
	FaultIsolate
)

// setFault replaces the site's fault rules.
func setFault(ctx context.Context, s Site, f Fault) error {
	ipt := func(args ...string) []string {
		return append([]string{"nsenter", "--net=/var/run/netns/" + s.Netns(), "--", "iptables", "-w", "5"}, args...)
	}
	cmds := [][]string{ipt("-F", faultChain)}
	switch f {
	case FaultControl:
		cmds = append(cmds, ipt("-A", faultChain, "-s", "10.77.0.0/24", "-j", "DROP"), ipt("-A", faultChain, "-d", "10.77.0.0/24", "-j", "DROP"))
	case FaultIsolate:
		cmds = append(cmds, ipt("-A", faultChain, "-i", "eth0", "-j", "DROP"), ipt("-A", faultChain, "-o", "eth0", "-j", "DROP"))
	}
	return steps(ctx, cmds)
}
