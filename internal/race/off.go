//go:build !race

// Package race tells whether the race detector is on, for tests that bound
// how long a return may take: the detector makes code several times slower
// (up to 8x measured on the planner's 1,000-site cancellations).
package race

// Enabled is true when this binary was built with -race.
const Enabled = false
