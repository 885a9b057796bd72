package topology

import (
	"strings"
	"sync"
	"time"
)

// RTTSource is what a MatrixCache reads: *Store has both.
type RTTSource interface {
	Matrix(sites []string) [][]float64
	RTTVersion() uint64
}

// MatrixCacheMaxAge bounds how long a MatrixCache hands out one matrix: RTTs
// also go stale with time, which changes no version.
const MatrixCacheMaxAge = time.Second

// MatrixCache keeps the RTT matrix last built for a list of sites and hands it
// out again while the RTTs are unchanged, for at most MatrixCacheMaxAge, so
// that a burst of pods does not rebuild it for each one. Load and traffic
// reports do not invalidate it. The zero value is ready; it is safe for
// concurrent use, and a matrix it returns must not be changed.
type MatrixCache struct {
	mu      sync.Mutex
	key     string
	version uint64
	built   time.Time
	rtt     [][]float64
}

// Matrix returns src's matrix for sites, from the cache when it is current.
// A rebuild runs outside the cache's lock, so readers of a current matrix do
// not wait behind it.
func (c *MatrixCache) Matrix(src RTTSource, sites []string) [][]float64 {
	key := strings.Join(sites, "\x00")
	v := src.RTTVersion()
	c.mu.Lock()
	if c.rtt != nil && c.key == key && c.version == v && time.Since(c.built) < MatrixCacheMaxAge {
		rtt := c.rtt
		c.mu.Unlock()
		return rtt
	}
	c.mu.Unlock()
	built := time.Now()
	rtt := src.Matrix(sites)
	c.mu.Lock()
	c.key, c.version, c.built, c.rtt = key, v, built, rtt
	c.mu.Unlock()
	return rtt
}
