package scheduler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ning-edge/ning/internal/schedmetrics"
	"github.com/ning-edge/ning/internal/source"
	"github.com/ning-edge/ning/internal/topology"
)

// CommandConfig is what `ning scheduler` adds to kube-scheduler's own
// command: the store its plugins read (PluginOptions) and the sources that
// feed it.
type CommandConfig struct {
	Store   *topology.Store
	Sources source.Sources
}

// RunCommand runs kubeScheduler (kube-scheduler's command, with ning's
// plugins reading c.Store) while c.Sources feed the store and
// ning_scheduler_data_age_seconds is kept current; it returns once
// kubeScheduler has returned and the sources have stopped.
func RunCommand(ctx context.Context, c CommandConfig, kubeScheduler func() error) error {
	return source.Feed(ctx, c.Sources, c.Store, func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		ages := make(chan struct{})
		go func() {
			defer close(ages)
			reportAges(ctx, c.Store)
		}()
		defer func() { cancel(); <-ages }()
		return kubeScheduler()
	})
}

// reportAges keeps ning_scheduler_data_age_seconds current.
func reportAges(ctx context.Context, store *topology.Store) {
	m := schedmetrics.Register()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		m.UpdateAges(store.LastUpdates(), time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// WriteDefaultConfig writes DefaultConfig(p) to a new temporary file for
// kube-scheduler's --config and returns its name.
func WriteDefaultConfig(p ConfigParams) (string, error) {
	cfg, err := DefaultConfig(p)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "ning-scheduler-")
	if err != nil {
		return "", fmt.Errorf("writing the default configuration: %w", err)
	}
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		return "", errors.Join(fmt.Errorf("writing the default configuration: %w", err), os.RemoveAll(dir))
	}
	return file, nil
}
