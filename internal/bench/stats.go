package bench

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/component-base/metrics/legacyregistry"
)

// schedulerStats reads, from the in-process scheduler's metrics, the seconds
// spent in each extension point and the scheduling attempts by result, for one
// profile. It is how a run says where the time went.
func schedulerStats(profile string) (map[string]float64, error) {
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering scheduler metrics: %w", err)
	}
	out := map[string]float64{}
	for _, mf := range families {
		switch mf.GetName() {
		case "scheduler_framework_extension_point_duration_seconds":
			for _, m := range mf.GetMetric() {
				l := labels(m.GetLabel())
				if l["profile"] == profile {
					out["seconds."+l["extension_point"]] += m.GetHistogram().GetSampleSum()
				}
			}
		case "scheduler_schedule_attempts_total":
			for _, m := range mf.GetMetric() {
				l := labels(m.GetLabel())
				if l["profile"] == profile {
					out["attempts."+l["result"]] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out, nil
}

func labels[L interface {
	GetName() string
	GetValue() string
}](pairs []L) map[string]string {
	out := map[string]string{}
	for _, p := range pairs {
		out[p.GetName()] = p.GetValue()
	}
	return out
}

// formatStats renders stats in a stable order for a log line.
func formatStats(s map[string]float64) string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%.3g ", k, s[k])
	}
	return strings.TrimSpace(b.String())
}
