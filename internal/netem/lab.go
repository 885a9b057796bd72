package netem

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Tools returns the paths of ip and iptables, or an error naming what is
// missing (a test skips with it).
func Tools() (ip, iptables string, err error) {
	if ip, err = exec.LookPath("ip"); err != nil {
		return "", "", fmt.Errorf("iproute2 (ip) not found: %w", err)
	}
	if iptables, err = exec.LookPath("iptables"); err != nil {
		return "", "", fmt.Errorf("iptables not found (apt-get install -y iptables): %w", err)
	}
	return ip, iptables, nil
}

// Lab is a set of network namespaces joined by veth pairs whose egress, in
// each namespace, goes through an NFQUEUE Delayer. Everything it creates lives
// inside its own namespaces: Close deletes them, and the iptables rules and
// addresses go with them.
type Lab struct {
	ip, iptables string
	prefix       string
	seed         uint64 // the delayers' random sources derive from it

	mu         sync.Mutex
	namespaces []string
	nextQueue  map[string]uint16
	devs       map[string][]string // namespace name -> its veths
	links      int
	cancels    []context.CancelFunc
	wg         sync.WaitGroup
	runErrs    []error
}

// NewLab returns an empty lab whose namespace names start with prefix. Its
// delayers' loss and jitter draw from a random seed (Seed); SetSeed before the
// first Link repeats an earlier run's pattern.
func NewLab(prefix string) (*Lab, error) {
	ip, ipt, err := Tools()
	if err != nil {
		return nil, err
	}
	return &Lab{ip: ip, iptables: ipt, prefix: prefix, seed: rand.Uint64(),
		nextQueue: map[string]uint16{}, devs: map[string][]string{}}, nil
}

// Seed returns the seed the lab's delayers derive their random sources from.
func (l *Lab) Seed() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seed
}

// SetSeed sets that seed; it applies to the links made after it.
func (l *Lab) SetSeed(seed uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seed = seed
}

// Namespace returns the full name of a lab namespace.
func (l *Lab) Namespace(name string) string { return l.prefix + name }

func (l *Lab) run(ctx context.Context, bin string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// AddNamespace creates a namespace with its loopback up and unprivileged ICMP
// open to every group.
func (l *Lab) AddNamespace(ctx context.Context, name string) error {
	ns := l.Namespace(name)
	if err := l.run(ctx, l.ip, "netns", "add", ns); err != nil {
		return err
	}
	l.mu.Lock()
	l.namespaces = append(l.namespaces, ns)
	l.mu.Unlock()
	if err := l.run(ctx, l.ip, "-n", ns, "link", "set", "lo", "up"); err != nil {
		return err
	}
	return l.run(ctx, l.ip, "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
}

// Link joins namespaces a and b with a veth pair on 10.78.N.0/24 (a is .1, b
// is .2) and shapes it: each direction gets Half(rtt). It returns the two
// addresses.
func (l *Lab) Link(ctx context.Context, a, b string, rtt Shape) (addrA, addrB string, err error) {
	if err := rtt.Validate(); err != nil {
		return "", "", err
	}
	l.mu.Lock()
	l.links++
	n := l.links
	l.mu.Unlock()
	if n > 250 {
		return "", "", errors.New("at most 250 links in a lab")
	}
	nsA, nsB := l.Namespace(a), l.Namespace(b)
	vA, vB := fmt.Sprintf("nl%da%d", os.Getpid()%10000, n), fmt.Sprintf("nl%db%d", os.Getpid()%10000, n)
	addrA, addrB = fmt.Sprintf("10.78.%d.1", n), fmt.Sprintf("10.78.%d.2", n)
	steps := [][]string{
		{"link", "add", vA, "netns", nsA, "type", "veth", "peer", "name", vB, "netns", nsB},
		{"-n", nsA, "addr", "add", addrA + "/24", "dev", vA},
		{"-n", nsB, "addr", "add", addrB + "/24", "dev", vB},
		{"-n", nsA, "link", "set", vA, "up"},
		{"-n", nsB, "link", "set", vB, "up"},
	}
	for _, s := range steps {
		if err := l.run(ctx, l.ip, s...); err != nil {
			return "", "", err
		}
	}
	l.mu.Lock()
	l.devs[a] = append(l.devs[a], vA)
	l.devs[b] = append(l.devs[b], vB)
	l.mu.Unlock()
	half := Half(rtt)
	for _, end := range []struct{ ns, dev string }{{nsA, vA}, {nsB, vB}} {
		if err := l.shape(ctx, end.ns, end.dev, half, uint64(n)); err != nil {
			return "", "", err
		}
	}
	return addrA, addrB, nil
}

// SetLinks sets every veth of namespace name up or down: down partitions
// the site (its peers lose carrier, nothing crosses in either direction),
// up heals it. The delayers keep running.
func (l *Lab) SetLinks(ctx context.Context, name string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	l.mu.Lock()
	devs := append([]string(nil), l.devs[name]...)
	l.mu.Unlock()
	if len(devs) == 0 {
		return fmt.Errorf("namespace %s has no links", name)
	}
	for _, dev := range devs {
		if err := l.run(ctx, l.ip, "-n", l.Namespace(name), "link", "set", dev, state); err != nil {
			return err
		}
	}
	return nil
}

// shape starts a delayer on a fresh queue in ns, then sends dev's egress to it
// (in that order: a rule without a bound queue drops every packet).
func (l *Lab) shape(ctx context.Context, ns, dev string, s Shape, seed uint64) error {
	l.mu.Lock()
	l.nextQueue[ns]++
	num := l.nextQueue[ns]
	l.mu.Unlock()
	f, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		return fmt.Errorf("opening namespace %s: %w", ns, err)
	}
	d, err := NewDelayer(int(f.Fd()), num, s, l.Seed()^(seed*1000+uint64(num)))
	_ = f.Close()
	if err != nil {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.mu.Lock()
	l.cancels = append(l.cancels, cancel)
	l.mu.Unlock()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := d.Run(dctx); err != nil {
			l.mu.Lock()
			l.runErrs = append(l.runErrs, fmt.Errorf("namespace %s, %s: %w", ns, dev, err))
			l.mu.Unlock()
		}
	}()
	return l.run(ctx, l.ip, "netns", "exec", ns, l.iptables, "-w", "5", "-A", "OUTPUT", "-o", dev,
		"-j", "NFQUEUE", "--queue-num", fmt.Sprint(num))
}

// Do runs f on a thread moved into namespace name, so sockets f opens live
// there (they stay there after f returns).
func (l *Lab) Do(name string, f func() error) error {
	target, err := os.Open("/var/run/netns/" + l.Namespace(name))
	if err != nil {
		return fmt.Errorf("opening namespace %s: %w", name, err)
	}
	defer func() { _ = target.Close() }()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is not unlocked if it cannot be restored: the runtime
		// then ends it with this goroutine.
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- fmt.Errorf("opening this thread's namespace: %w", err)
			return
		}
		defer func() { _ = self.Close() }()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering namespace %s: %w", name, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leaving namespace %s: %w", name, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Close stops the delayers and deletes the namespaces (their veths, addresses
// and iptables rules with them). It reports any delayer that failed.
func (l *Lab) Close() error {
	l.mu.Lock()
	cancels, namespaces := l.cancels, l.namespaces
	l.cancels, l.namespaces = nil, nil
	l.mu.Unlock()
	for _, c := range cancels {
		c()
	}
	l.wg.Wait()
	var errs []error
	for _, ns := range namespaces {
		if err := l.run(context.Background(), l.ip, "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	l.mu.Lock()
	errs = append(errs, l.runErrs...)
	l.mu.Unlock()
	return errors.Join(errs...)
}
