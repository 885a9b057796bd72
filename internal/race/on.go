//go:build race

package race

// Enabled is true when this binary was built with -race.
const Enabled = true
