package logging

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// maxEveryKeys bounds the keys an Every remembers, so that a flood of
// distinct sources cannot grow it: past it, keys older than the interval are
// dropped, and if none are, all are.
const maxEveryKeys = 4096

// Every lets one line per key (a refusal's source and reason) through per
// interval, so that a client refused a thousand times a second is logged
// once a minute, while the metric counts every refusal. The zero value is not
// ready; use NewEvery. It is safe for concurrent use.
type Every struct {
	interval time.Duration
	clock    clock.PassiveClock

	mu   sync.Mutex
	last map[string]time.Time
}

// NewEvery returns an Every letting a key through once per interval.
func NewEvery(interval time.Duration, clk clock.PassiveClock) *Every {
	return &Every{interval: interval, clock: clk, last: map[string]time.Time{}}
}

// Allow reports whether key's line is due, and if so starts its interval.
func (e *Every) Allow(key string) bool {
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.last[key]; ok && now.Sub(t) < e.interval {
		return false
	}
	if len(e.last) >= maxEveryKeys {
		for k, t := range e.last {
			if now.Sub(t) >= e.interval {
				delete(e.last, k)
			}
		}
		if len(e.last) >= maxEveryKeys {
			clear(e.last)
		}
	}
	e.last[key] = now
	return true
}
