package race

import "time"

// Scale is d, or ten times d under the race detector: a bound on how long
// something may take to return, not a speed figure.
func Scale(d time.Duration) time.Duration {
	if Enabled {
		return 10 * d
	}
	return d
}
