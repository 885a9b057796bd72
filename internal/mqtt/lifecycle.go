package mqtt

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// FlushTimeout bounds how long a command's publisher flushes its queue when
// it stops.
const FlushTimeout = 10 * time.Second

// StartPublisher is a command's publisher: it outlives ctx (the end of ctx
// is usually a signal) so that close can still flush what is queued, within
// FlushTimeout, and disconnect. The caller calls close once it is done
// publishing.
func StartPublisher(ctx context.Context, cfg Config, opts PublisherOptions, reg prometheus.Registerer, log *slog.Logger) (p *Publisher, close func() error, err error) {
	pubCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if p, err = NewPublisher(pubCtx, cfg, opts, reg, log); err != nil {
		cancel()
		return nil, nil, err
	}
	return p, func() error {
		defer cancel()
		cctx, done := context.WithTimeout(pubCtx, FlushTimeout)
		defer done()
		return p.Close(cctx)
	}, nil
}
