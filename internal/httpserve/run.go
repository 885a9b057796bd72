package httpserve

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"golang.org/x/sync/errgroup"
)

// Listen opens the TCP address of a component's server; the error names
// the flag it came from.
func Listen(flag, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--%s %s: %w", flag, addr, err)
	}
	return ln, nil
}

// ListenOrFree opens addr, or a free port on its host if addr is taken.
func ListenOrFree(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	host, _, serr := net.SplitHostPort(addr)
	if serr != nil {
		return nil, err
	}
	if ln, ferr := net.Listen("tcp", net.JoinHostPort(host, "0")); ferr == nil {
		return ln, nil
	}
	return nil, err
}

// RunWith runs a component: run, and beside it (when ln is not nil) h served
// on ln, in one errgroup. The first of them to fail stops the other, and
// when run returns the server shuts down. It returns once both have
// stopped, with the first error.
func RunWith(ctx context.Context, name string, ln net.Listener, h http.Handler, o Options, log *slog.Logger, run func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	if ln != nil {
		g.Go(func() error { return Serve(gctx, name, ln, h, o, log) })
	}
	g.Go(func() error {
		defer cancel()
		return run(gctx)
	})
	return g.Wait()
}
