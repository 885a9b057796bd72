package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// proc is a process the lab started: a node component in a site namespace,
// or a control-plane component.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// procs are the lab's running processes by name.
type procs struct {
	mu sync.Mutex
	m  map[string]*proc
}

func newProcs() *procs { return &procs{m: map[string]*proc{}} }

// start runs bin with args in network namespace netns (nsenter --net), its
// own process group, output appended to logs/<name>.log.
func (ps *procs) start(name, netns, bin string, args ...string) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p := ps.m[name]; p != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is already running (pid %d)", name, p.cmd.Process.Pid)
		}
	}
	logFile := filepath.Join(StateDir, "logs", name+".log")
	if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = out.Close() }()
	cmd := exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + netns, "--", bin}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = StateDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	ps.m[name] = p
	return nil
}

// kill sends sig to the process group of name and waits up to wait for it
// to exit (then kills it).
func (ps *procs) kill(name string, sig syscall.Signal, wait time.Duration) error {
	ps.mu.Lock()
	p := ps.m[name]
	ps.mu.Unlock()
	if p == nil {
		return nil
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(wait):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit", name, p.cmd.Process.Pid)
	}
}

// exited reports the processes that have exited, with their errors.
func (ps *procs) exited() error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var errs []error
	for n, p := range ps.m {
		select {
		case <-p.done:
			errs = append(errs, fmt.Errorf("%s exited: %v (see %s/logs/%s.log)", n, p.err, StateDir, n))
		default:
		}
	}
	return errors.Join(errs...)
}

// pids returns the running processes' pids by name.
func (ps *procs) pids() map[string]int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := map[string]int{}
	for n, p := range ps.m {
		select {
		case <-p.done:
		default:
			out[n] = p.cmd.Process.Pid
		}
	}
	return out
}

// waitFor polls ok every 250 ms until it returns true or nil error, ctx ends
// or timeout passes; the error names what was awaited and the last failure.
func waitFor(ctx context.Context, what string, timeout time.Duration, ok func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = ok(ctx); last == nil {
			return nil
		}
		if errors.Is(last, errStop) {
			return fmt.Errorf("waiting for %s: %w", what, last) // no use waiting on
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting %s for %s: %w", timeout, what, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
