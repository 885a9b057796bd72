package netem

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// LockFile serialises the timing-sensitive network-namespace tests across
// test binaries: `go test ./...` runs packages in parallel, and two
// userspace delayers competing for two CPUs add milliseconds to each other's
// round trips.
const LockFile = "/tmp/ning-netns-timing.lock"

// measuringNice is the nice value of the measuring process while it holds
// the lock: the delayer and the prober it starts (which inherits it) should
// not queue behind compilers and other tests for a CPU.
const measuringNice = -10

// Exclusive takes the cross-process lock (waiting for another test binary
// that holds it) and raises this process's CPU priority, including the
// processes it starts, until the returned function is called. It needs root,
// as the tests that call it do; it must be called before the Lab is built so
// that the delayer's threads inherit the priority.
func Exclusive() (release func(), err error) {
	f, err := os.OpenFile(LockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", LockFile, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("locking %s: %w", LockFile, err)
	}
	old := setNiceAllThreads(measuringNice)
	return func() {
		setNiceAllThreads(old)
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		_ = f.Close()
	}, nil
}

// setNiceAllThreads sets the nice value of every thread of this process (on
// Linux nice is per thread; threads created later inherit their creator's)
// and returns the main thread's previous value.
func setNiceAllThreads(nice int) (old int) {
	// getpriority returns 20 - nice for the raw system call.
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	old = 0
	if err == nil {
		old = 20 - prio
	}
	tasks, err := filepath.Glob("/proc/self/task/*")
	if err != nil {
		return old
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(filepath.Base(task))
		if err != nil {
			continue
		}
		_ = unix.Setpriority(unix.PRIO_PROCESS, tid, nice)
	}
	return old
}
