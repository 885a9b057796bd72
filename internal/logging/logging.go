// Package logging is ning's one logging system: log/slog, with klog (which
// client-go, leader election, kube-scheduler and the embedded kube-apiserver
// write to) routed through the same handler, so that one --log-level filters
// every line the process prints.
package logging

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"

	"k8s.io/klog/v2"
)

// Levels names the values a --log-level flag takes.
const Levels = "debug, info, warn or error"

// ParseLevel parses a --log-level value.
func ParseLevel(level string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want %s", level, Levels)
	}
	return l, nil
}

// New returns a text logger writing to w at level (see Levels). It does not
// touch klog; Setup does.
func New(w io.Writer, level string) (*slog.Logger, error) {
	l, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// Setup returns New's logger and makes it klog's: klog's errors become
// slog errors, its info lines slog info, and klog.V(n) lines slog level -n
// (logr's mapping), so debug shows klog's V(1) to V(4) and info none of them.
// klog is process-global: a command calls Setup once, before it starts the
// libraries that log.
func Setup(w io.Writer, level string) (*slog.Logger, error) {
	log, err := New(w, level)
	if err != nil {
		return nil, err
	}
	l, _ := ParseLevel(level) // New parsed it
	// klog drops V(n) lines above its own -v before any logger sees them.
	v := 0
	if l < slog.LevelInfo {
		v = int(slog.LevelInfo - l)
	}
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	if err := fs.Set("v", strconv.Itoa(v)); err != nil {
		return nil, fmt.Errorf("klog verbosity: %w", err)
	}
	klog.SetSlogLogger(log)
	return log, nil
}
