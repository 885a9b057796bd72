package logging

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Throttle lets one log line through per key and interval, so that a
// source refused a thousand times a second is logged once a second, not a
// thousand times. It is safe for concurrent use.
type Throttle struct {
	interval time.Duration
	clock    clock.PassiveClock

	mu   sync.Mutex
	last map[string]throttled
}

type throttled struct {
	at         time.Time
	suppressed int
}

// maxThrottleKeys bounds the keys a Throttle remembers: past it, keys older
// than one interval are forgotten, and if all are recent the map is reset
// (a flood of distinct sources then logs more, never grows memory).
const maxThrottleKeys = 4096

// NewThrottle returns a Throttle letting one line per key through every
// interval, timed by clk.
func NewThrottle(interval time.Duration, clk clock.PassiveClock) *Throttle {
	return &Throttle{interval: interval, clock: clk, last: map[string]throttled{}}
}

// Allow reports whether a line for key may be logged now, and how many
// lines for key it held back since the last one it let through.
func (t *Throttle) Allow(key string) (ok bool, suppressed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now()
	e, seen := t.last[key]
	if seen && now.Sub(e.at) < t.interval {
		e.suppressed++
		t.last[key] = e
		return false, 0
	}
	if !seen && len(t.last) >= maxThrottleKeys {
		for k, v := range t.last {
			if now.Sub(v.at) >= t.interval {
				delete(t.last, k)
			}
		}
		if len(t.last) >= maxThrottleKeys {
			clear(t.last)
		}
	}
	t.last[key] = throttled{at: now}
	return true, e.suppressed
}
