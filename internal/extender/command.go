package extender

import (
	"context"
	"errors"
	"log/slog"

	"k8s.io/client-go/kubernetes"

	"github.com/ning-edge/ning/internal/httpserve"
	"github.com/ning-edge/ning/internal/source"
	"github.com/ning-edge/ning/internal/topology"
)

// RunConfig is what `ning extender` runs with; the command builds it from
// its flags and calls Run.
type RunConfig struct {
	Client kubernetes.Interface
	// Store is what the extender reads, fed by Sources while it runs.
	Store   *topology.Store
	Sources source.Sources
	// Listen is the address of the extender API.
	Listen  string
	Options RunOptions
	Log     *slog.Logger
}

// Run feeds the store from the sources and serves the extender API on
// c.Listen until ctx is done (Serve).
func Run(ctx context.Context, c RunConfig) error {
	if c.Store == nil || c.Client == nil {
		return errors.New("extender: a store and a client are needed")
	}
	return source.Feed(ctx, c.Sources, c.Store, func(ctx context.Context) error {
		ln, err := httpserve.Listen("listen", c.Listen)
		if err != nil {
			return err
		}
		return Serve(ctx, ln, c.Client, c.Store, c.Options, c.Log)
	})
}
