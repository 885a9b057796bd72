package broker

import (
	"context"
	"log/slog"
)

// RunConfig is what `ning broker` runs with; the command builds it from
// its flags and calls Run.
type RunConfig struct {
	Config Config
	Log    *slog.Logger
}

// Run starts the broker and serves until ctx ends.
func Run(ctx context.Context, c RunConfig) error {
	b, err := New(c.Config, c.Log)
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		return err
	}
	c.Log.Info("broker listening", "addr", b.Addr(), "tls", c.Config.CertFile != "", "users", len(c.Config.Users), "dataDir", c.Config.DataDir)
	return b.Run(ctx)
}
