package probe

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
)

// Publisher is where periodic reports go (the MQTT publisher).
type Publisher interface {
	PublishLatency(*ningv1.LatencyReport) error
}

// Loop runs rounds every period (plus up to jitter×period of random delay, so
// probers started together spread out) until ctx ends.
type Loop struct {
	Prober    *Prober
	Publisher Publisher
	Scores    *Scores
	Period    time.Duration
	Jitter    float64 // 0..1
	Log       *slog.Logger

	lastRound atomic.Int64 // unix nanoseconds of the last completed round
}

// Run blocks until ctx ends.
func (l *Loop) Run(ctx context.Context) error {
	for {
		r, err := l.Prober.Round(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		l.lastRound.Store(time.Now().UnixNano())
		if l.Scores != nil {
			l.Scores.Update(r)
		}
		if err := l.Publisher.PublishLatency(r); err != nil {
			l.Log.Error("publishing report", "err", err)
		}
		l.Log.Debug("round done", "targets", len(r.GetTargets()))
		wait := l.Period + time.Duration(rand.Float64()*l.Jitter*float64(l.Period))
		if err := sleep(ctx, wait); err != nil {
			return nil
		}
	}
}

// Healthy reports whether a round completed recently (within 3 periods plus
// the time one round can take), or none was due yet.
func (l *Loop) Healthy(started time.Time, roundTime time.Duration) error {
	limit := 3*l.Period + roundTime
	last := l.lastRound.Load()
	if last == 0 {
		if time.Since(started) > limit {
			return fmt.Errorf("no probe round completed in %s", time.Since(started).Round(time.Second))
		}
		return nil
	}
	if age := time.Since(time.Unix(0, last)); age > limit {
		return fmt.Errorf("last probe round %s ago", age.Round(time.Second))
	}
	return nil
}
