package source

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/ning-edge/ning/internal/topology"
)

// LoadLatencyFile reads a topology file (YAML) or a CSV RTT matrix (by the
// .csv extension), checks it strictly (topology.ParseFile) and loads its
// RTTs, site capacities and any traffic into the store as static figures
// that never go stale; a fresh measurement of a pair takes precedence. A file that does not parse
// writes nothing and is counted as undecodable.
func LoadLatencyFile(store *topology.Store, path string, m *Metrics) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("latency file: %w", err)
	}
	if len(data) > topology.MaxSpecBytes {
		m.rejected.WithLabelValues(ReasonTooLarge).Inc()
		return fmt.Errorf("latency file %s: %d bytes, at most %d", path, len(data), topology.MaxSpecBytes)
	}
	spec, err := topology.ParseFile(path, data)
	if err != nil {
		m.rejected.WithLabelValues(ReasonUndecodable).Inc()
		return fmt.Errorf("latency file %s: %w", path, err)
	}
	if err := store.LoadSpec(spec); err != nil {
		m.rejected.WithLabelValues(ReasonStore).Inc()
		return fmt.Errorf("latency file %s: %w", path, err)
	}
	m.accepted.WithLabelValues("static").Inc()
	return nil
}

// LatencyFileFlag adds --latency-file to fs, for the commands that read the
// store (scheduler, extender, rescheduler), and returns where its value goes.
func LatencyFileFlag(fs *pflag.FlagSet) *string {
	return fs.String("latency-file", "", "static RTTs, traffic and site capacities: a topology file (YAML) or a CSV matrix (.csv, RTTs only); measurements take precedence")
}
