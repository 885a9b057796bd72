package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// makeCgroup creates name in every cgroup v1 hierarchy, with cpuset.cpus
// and cpuset.mems copied from the root (an empty cpuset takes no tasks).
func makeCgroup(name string) error {
	dirs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	for _, h := range dirs {
		d := filepath.Join(h, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("cgroup %s: %w", d, err)
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
					return fmt.Errorf("cgroup %s/%s: %w", d, f, err)
				}
			}
		}
	}
	return nil
}

// killCgroup SIGKILLs every process in the cgroups named name (and below)
// of every hierarchy and returns how many it signalled.
func killCgroup(name string) (int, error) {
	dirs, err := cgroupHierarchies()
	if err != nil {
		return 0, err
	}
	seen := map[int]bool{}
	for _, h := range dirs {
		_ = filepath.WalkDir(filepath.Join(h, name), func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			data, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
					seen[pid] = true
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
	}
	return len(seen), nil
}

// removeCgroups removes every cgroup whose name starts with CgroupPrefix,
// depth first, after killing what is in them.
func removeCgroups() error {
	dirs, err := cgroupHierarchies()
	if err != nil {
		return nil // no cgroup v1: nothing of ours can be there
	}
	// runc on a hybrid machine also makes the same paths in the unified
	// (cgroup v2) hierarchy.
	if _, err := os.Stat("/sys/fs/cgroup/unified"); err == nil {
		dirs = append(dirs, "/sys/fs/cgroup/unified")
	}
	var errs []error
	for _, h := range dirs {
		tops, _ := filepath.Glob(filepath.Join(h, CgroupPrefix+"*"))
		for _, top := range tops {
			if _, err := killCgroup(strings.TrimPrefix(top, h+"/")); err != nil {
				errs = append(errs, err)
			}
			var all []string
			_ = filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					all = append(all, path)
				}
				return nil
			})
			sort.Slice(all, func(i, j int) bool { return len(all[i]) > len(all[j]) })
			for _, d := range all {
				var err error
				for range 50 { // a killed task leaves its cgroup a moment later
					if err = unix.Rmdir(d); err == nil || errors.Is(err, unix.ENOENT) {
						err = nil
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// netnsInode returns the inode of a named network namespace.
func netnsInode(name string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/var/run/netns/"+name, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// killNetns SIGKILLs every process whose network namespace is the named one
// and returns how many.
func killNetns(name string) (int, error) {
	ino, err := netnsInode(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	n := 0
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) != nil || st.Ino != ino {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n, nil
}

// labNamespaces lists the lab's network namespaces.
func labNamespaces() []string {
	entries, _ := os.ReadDir("/var/run/netns")
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), NetnsPrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// podNamespaces lists the pod namespaces (containerd's cni-*) whose
// interfaces carry a lab pod address, or that are left without any
// interface but loopback once their site is gone.
func podNamespaces(ctx context.Context) []string {
	entries, _ := os.ReadDir("/var/run/netns")
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "cni-") {
			continue
		}
		cmd := []string{"ip", "-n", e.Name(), "-o", "-4", "addr"}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		b, err := execOutput(ctx, cmd[0], cmd[1:]...)
		cancel()
		if err != nil {
			continue
		}
		if strings.Contains(b, " 10.78.") {
			out = append(out, e.Name())
		}
	}
	return out
}

// Clean removes everything a lab left behind, running or not: the daemon,
// every process in the lab's namespaces and cgroups, the pod namespaces of
// lab pods, the mounts under StateDir and RunDir, the cgroups, the bridge,
// the namespaces and the directories. It does not need the daemon or any
// state file, so it also cleans up after kill -9. did lists what it removed.
func Clean(ctx context.Context) (did []string, err error) {
	var errs []error
	if pid, err := daemonPid(); err == nil && pid != os.Getpid() {
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			did = append(did, fmt.Sprintf("killed the lab daemon (pid %d)", pid))
		}
	}
	pods := podNamespaces(ctx)
	nss := labNamespaces()
	killed := 0
	for _, ns := range nss {
		n, err := killNetns(ns)
		if err != nil {
			errs = append(errs, err)
		}
		killed += n
	}
	tops, _ := filepath.Glob("/sys/fs/cgroup/*/" + CgroupPrefix + "*")
	for _, top := range tops {
		n, _ := killCgroup(strings.TrimPrefix(top, filepath.Dir(top)+"/"))
		killed += n
	}
	// What runs outside them: a ctr import the daemon had started, say.
	for _, p := range labProcs() {
		if syscall.Kill(p.pid, syscall.SIGKILL) == nil {
			killed++
		}
	}
	if killed > 0 {
		did = append(did, fmt.Sprintf("killed %d processes", killed))
		time.Sleep(500 * time.Millisecond)
	}
	if n, err := unmountUnder(StateDir, RunDir); err != nil {
		errs = append(errs, err)
	} else if n > 0 {
		did = append(did, fmt.Sprintf("unmounted %d mounts", n))
	}
	for _, ns := range pods {
		if err := run(ctx, "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if len(pods) > 0 {
		did = append(did, fmt.Sprintf("deleted %d pod namespaces", len(pods)))
	}
	if err := removeCgroups(); err != nil {
		errs = append(errs, err)
	}
	if len(tops) > 0 {
		did = append(did, fmt.Sprintf("removed cgroups %s*", CgroupPrefix))
	}
	for _, ns := range nss {
		if err := run(ctx, "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if len(nss) > 0 {
		did = append(did, fmt.Sprintf("deleted namespaces %s", strings.Join(nss, " ")))
	}
	links, _ := filepath.Glob("/sys/class/net/nlabh*")
	for _, l := range links {
		_ = run(ctx, "ip", "link", "del", filepath.Base(l))
	}
	if _, err := os.Stat("/sys/class/net/" + Bridge); err == nil {
		if err := run(ctx, "ip", "link", "del", Bridge); err != nil {
			errs = append(errs, err)
		} else {
			did = append(did, "deleted bridge "+Bridge+" and its veths")
		}
	}
	// The kubelet links every container's log into /var/log/containers
	// (a path it does not let one configure).
	logLinks, _ := filepath.Glob("/var/log/containers/*.log")
	removed := 0
	for _, ln := range logLinks {
		if target, err := os.Readlink(ln); err == nil && strings.HasPrefix(target, StateDir+"/") {
			if os.Remove(ln) == nil {
				removed++
			}
		}
	}
	if removed > 0 {
		did = append(did, fmt.Sprintf("removed %d container log links from /var/log/containers", removed))
	}
	for _, d := range []string{RunDir, StateDir} {
		if _, err := os.Stat(d); err == nil {
			if err := os.RemoveAll(d); err != nil {
				errs = append(errs, fmt.Errorf("removing %s: %w", d, err))
			} else {
				did = append(did, "removed "+d)
			}
		}
	}
	return did, errors.Join(errs...)
}

// unmountUnder lazily unmounts every mount point below the given
// directories, deepest first, and returns how many.
func unmountUnder(dirs ...string) (int, error) {
	mounts, err := procfs.GetMounts()
	if err != nil {
		return 0, fmt.Errorf("reading the mounts: %w", err)
	}
	var mine []string
	for _, m := range mounts {
		for _, d := range dirs {
			if m.MountPoint == d || strings.HasPrefix(m.MountPoint, d+"/") {
				mine = append(mine, m.MountPoint)
			}
		}
	}
	sort.Slice(mine, func(i, j int) bool { return len(mine[i]) > len(mine[j]) })
	var errs []error
	for _, m := range mine {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", m, err))
		}
	}
	return len(mine), errors.Join(errs...)
}

// daemonPid reads the running daemon's pid file.
func daemonPid() (int, error) {
	b, err := os.ReadFile(RunDir + "/lab.pid")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// Leftovers lists everything of a lab that exists on the machine, found as
// Clean finds it (by name and place, without a state file) plus what Clean
// would miss if it went wrong: network namespaces, pod namespaces with a lab
// address, the bridge and veths, cgroups in every hierarchy, mounts under
// StateDir and RunDir, processes whose command line names those directories
// or that run in the lab's namespaces or cgroups, host iptables rules naming
// the lab's interfaces or addresses, the kubelet's log links, and the
// directories themselves (containerd's roots and state live in them). Empty
// after ning lab down.
func Leftovers(ctx context.Context) []string {
	var out []string
	for _, ns := range labNamespaces() {
		out = append(out, "network namespace "+ns)
	}
	for _, ns := range podNamespaces(ctx) {
		out = append(out, "pod network namespace "+ns+" (a 10.78.x address)")
	}
	links, _ := filepath.Glob("/sys/class/net/nlab*")
	for _, l := range links {
		out = append(out, "link "+filepath.Base(l))
	}
	dirs, _ := cgroupHierarchies()
	dirs = append(dirs, "/sys/fs/cgroup/unified")
	for _, h := range dirs {
		cgs, _ := filepath.Glob(filepath.Join(h, CgroupPrefix+"*"))
		for _, c := range cgs {
			out = append(out, "cgroup "+c)
		}
	}
	if mounts, err := procfs.GetMounts(); err == nil {
		for _, m := range mounts {
			for _, d := range []string{StateDir, RunDir} {
				if m.MountPoint == d || strings.HasPrefix(m.MountPoint, d+"/") {
					out = append(out, "mount "+m.MountPoint)
				}
			}
		}
	}
	if pid, err := daemonPid(); err == nil && syscall.Kill(pid, 0) == nil {
		out = append(out, fmt.Sprintf("the lab daemon (pid %d)", pid))
	}
	out = append(out, labProcesses()...)
	if rules, err := execOutput(ctx, "iptables-save"); err == nil {
		for _, r := range strings.Split(rules, "\n") {
			if strings.Contains(r, Bridge) || strings.Contains(r, "nlabh") || strings.Contains(r, "10.77.") || strings.Contains(r, "10.78.") {
				out = append(out, "host iptables rule "+r)
			}
		}
	}
	logLinks, _ := filepath.Glob("/var/log/containers/*.log")
	for _, ln := range logLinks {
		if target, err := os.Readlink(ln); err == nil && strings.HasPrefix(target, StateDir+"/") {
			out = append(out, "container log link "+ln)
		}
	}
	for _, d := range []string{RunDir, StateDir} {
		if _, err := os.Stat(d); err == nil {
			out = append(out, "directory "+d)
		}
	}
	return out
}

// labTools are the programs the lab runs (hostTools, Binaries, and the
// containers' runtime); a process of one of them whose command line names
// the lab's directories is the lab's, wherever it runs: ctr importing
// images, for one, runs in the host's namespaces.
var labTools = map[string]bool{"ctr": true, "containerd": true, "containerd-shim-runc-v2": true, "runc": true,
	"kubelet": true, "kube-proxy": true, "kube-controller-manager": true, "coredns": true, "nsenter": true,
	"ip": true, "iptables": true, "iptables-save": true, "ning": true}

// labProc is a live process of a lab.
type labProc struct {
	pid       int
	why, args string
}

// labProcs lists the live processes (not this one) that belong to a lab:
// they run in a lab network namespace or cgroup, or they are one of the
// lab's tools and their command line names StateDir or RunDir.
func labProcs() []labProc {
	nsIno := map[uint64]string{}
	for _, ns := range labNamespaces() {
		if ino, err := netnsInode(ns); err == nil {
			nsIno[ino] = ns
		}
	}
	entries, _ := os.ReadDir("/proc")
	var out []labProc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(cmdline) == 0 { // gone, or a kernel thread or zombie
			continue
		}
		argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		args := strings.Join(argv, " ")
		var why string
		var st unix.Stat_t
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		switch {
		case unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) == nil && nsIno[st.Ino] != "":
			why = "in network namespace " + nsIno[st.Ino]
		case strings.Contains(string(cg), "/"+CgroupPrefix):
			why = "in a lab cgroup"
		case labTools[filepath.Base(argv[0])] && (namesDir(args, StateDir) || namesDir(args, RunDir)):
			why = "names the lab's directories"
		default:
			continue
		}
		out = append(out, labProc{pid: pid, why: why, args: args})
	}
	return out
}

// labProcesses describes labProcs for Leftovers.
func labProcesses() []string {
	var out []string
	for _, p := range labProcs() {
		args := p.args
		if len(args) > 120 {
			args = args[:120] + "..."
		}
		out = append(out, fmt.Sprintf("process %d (%s): %s", p.pid, p.why, args))
	}
	return out
}

// namesDir reports whether a command line names dir or a path below it
// (not merely a name starting like it, such as /run/ning-lab.lock).
func namesDir(args, dir string) bool {
	return strings.Contains(args, dir+"/") || strings.Contains(args, dir+" ") || strings.HasSuffix(args, dir)
}
