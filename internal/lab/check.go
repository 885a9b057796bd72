package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/prometheus/procfs"
)

// Binaries the lab runs from its bin directory (make lab-bins builds them).
var Binaries = []string{"kubelet", "kube-controller-manager", "kube-proxy", "coredns"}

// Images are the archives `make images` writes into <bin>/images.
var Images = []string{"ning", "pause", "workload", "busybox"}

// hostTools are the programs the lab runs from PATH, with the Debian package
// that has each.
var hostTools = [][2]string{
	{"ip", "iproute2"}, {"iptables", "iptables"}, {"nsenter", "util-linux"},
	{"containerd", "containerd"}, {"containerd-shim-runc-v2", "containerd"}, {"ctr", "containerd"},
	{"runc", "runc"},
}

// CNIDir holds the CNI plugins (containernetworking-plugins).
const CNIDir = "/usr/lib/cni"

// perSiteBytes is what a site needs at idle plus headroom for ning's pods and
// a workload; controlBytes is etcd, the apiserver and the controllers.
const (
	perSiteBytes = 400 << 20
	controlBytes = 1500 << 20
)

// Check reports everything missing for a lab of plan with binaries in
// binDir, all at once: not root, a tool, a binary, an image, cgroup v1, or
// memory for a topology this size.
func Check(plan *Plan, binDir string) error {
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, ErrNotRoot)
	}
	for _, t := range hostTools {
		if _, err := exec.LookPath(t[0]); err != nil {
			errs = append(errs, fmt.Errorf("%s not found: apt-get install -y --no-install-recommends %s", t[0], t[1]))
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := os.Stat(filepath.Join(CNIDir, p)); err != nil {
			errs = append(errs, fmt.Errorf("CNI plugin %s not found in %s: apt-get install -y --no-install-recommends containernetworking-plugins", p, CNIDir))
		}
	}
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			errs = append(errs, fmt.Errorf("%s not found in %s: run make lab-bins", b, binDir))
		}
	}
	for _, im := range Images {
		if _, err := os.Stat(filepath.Join(binDir, "images", im+".tar")); err != nil {
			errs = append(errs, fmt.Errorf("image %s.tar not found in %s/images: run make images", im, binDir))
		}
	}
	if _, err := cgroupHierarchies(); err != nil {
		errs = append(errs, err)
	}
	if fs, err := procfs.NewDefaultFS(); err == nil {
		if mi, err := fs.Meminfo(); err == nil && mi.MemAvailable != nil {
			if err := checkMemory(len(plan.Sites), *mi.MemAvailable*1024); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// NeedBytes is the memory a lab of sites sites needs: the control plane and
// each site at idle, with headroom for ning's pods and a workload.
func NeedBytes(sites int) uint64 { return uint64(controlBytes + perSiteBytes*sites) }

// checkMemory says whether a lab of sites sites fits in available bytes.
func checkMemory(sites int, available uint64) error {
	if need := NeedBytes(sites); available < need {
		return fmt.Errorf("topology too large for this machine: %d sites need about %d MiB, %d MiB available", sites, need>>20, available>>20)
	}
	return nil
}

// cgroupHierarchies returns the mounted cgroup v1 hierarchies' directories
// (the kubelets run with cgroupfs on v1: this machine has no v2).
func cgroupHierarchies() ([]string, error) {
	mounts, err := procfs.GetMounts()
	if err != nil {
		return nil, fmt.Errorf("reading the mounts: %w", err)
	}
	var dirs []string
	for _, m := range mounts {
		if m.FSType != "cgroup" {
			continue
		}
		if _, named := m.SuperOptions["name"]; named && !strings.Contains(m.MountPoint, "systemd") {
			continue
		}
		dirs = append(dirs, m.MountPoint)
	}
	if len(dirs) == 0 {
		return nil, errors.New("no cgroup v1 hierarchy mounted: the lab's kubelets use cgroupfs on cgroup v1")
	}
	return dirs, nil
}
