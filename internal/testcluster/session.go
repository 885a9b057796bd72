package testcluster

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
)

// Session lets a command (a benchmark, the demo) use Start outside a test: it
// collects cleanups, makes temporary directories and logs at debug level.
// Fatal calls panic with the message, as they are invariant failures of the
// embedded control plane, not input errors.
type Session struct {
	name string
	log  *slog.Logger

	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

// NewSession returns a session; call Close to stop what it started.
func NewSession(name string, log *slog.Logger) *Session {
	return &Session{name: name, log: log}
}

// Close runs the cleanups, last registered first, and removes the temporary directories.
func (s *Session) Close() {
	s.mu.Lock()
	fns := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// Cleanup registers f to run at Close.
func (s *Session) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// TempDir makes a directory removed at Close.
func (s *Session) TempDir() string {
	dir, err := os.MkdirTemp("", "ning-"+s.name+"-")
	if err != nil {
		s.Fatalf("making a temporary directory: %v", err)
	}
	s.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// Error logs and marks the session failed.
func (s *Session) Error(args ...any) { s.Errorf("%s", fmt.Sprint(args...)) }

// Errorf logs and marks the session failed.
func (s *Session) Errorf(format string, args ...any) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	s.log.Error(fmt.Sprintf(format, args...))
}

// Fail marks the session failed.
func (s *Session) Fail() { s.Errorf("failed") }

// FailNow panics.
func (s *Session) FailNow() { s.Fatalf("failed") }

// Failed reports whether an error was logged.
func (s *Session) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// Fatal panics with the message.
func (s *Session) Fatal(args ...any) { s.Fatalf("%s", fmt.Sprint(args...)) }

// Fatalf panics with the message.
func (s *Session) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("%s: %s", s.name, fmt.Sprintf(format, args...)))
}

// Helper does nothing.
func (s *Session) Helper() {}

// Log logs at debug level.
func (s *Session) Log(args ...any) { s.log.Debug(fmt.Sprint(args...)) }

// Logf logs at debug level.
func (s *Session) Logf(format string, args ...any) { s.log.Debug(fmt.Sprintf(format, args...)) }

// Name returns the session's name.
func (s *Session) Name() string { return s.name }

// Setenv sets an environment variable until Close.
func (s *Session) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	_ = os.Setenv(key, value)
	s.Cleanup(func() {
		if had {
			_ = os.Setenv(key, old)
		} else {
			_ = os.Unsetenv(key)
		}
	})
}

// Skip logs.
func (s *Session) Skip(args ...any) { s.Log(args...) }

// SkipNow does nothing.
func (s *Session) SkipNow() {}

// Skipf logs.
func (s *Session) Skipf(format string, args ...any) { s.Logf(format, args...) }

// Skipped reports false.
func (s *Session) Skipped() bool { return false }
