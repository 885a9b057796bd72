package source

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"time"

	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/probe"
	"github.com/ning-edge/ning/internal/topology"
)

// MaxScoreEntries bounds one /scores answer.
const MaxScoreEntries = 10_000

// DecodeScores decodes a prober's /scores body (seed 004's shape, as `ning
// probe` serves it), bounded to maxBytes, and checks every entry: a host
// name, an IPv4 address or none, both scores finite and within 0..1, no host
// twice. Errors are *topology.RejectError.
func DecodeScores(data []byte, maxBytes int) ([]probe.Score, error) {
	if len(data) > maxBytes {
		return nil, &topology.RejectError{Reason: ReasonTooLarge, Detail: fmt.Sprintf("body of %d bytes is over the %d byte limit", len(data), maxBytes)}
	}
	var scores []probe.Score
	if err := decodeJSON(data, &scores); err != nil {
		return nil, &topology.RejectError{Reason: ReasonUndecodable, Detail: fmt.Sprintf("decoding /scores: %v", err)}
	}
	if len(scores) == 0 {
		return nil, &topology.RejectError{Reason: ReasonUndecodable, Detail: "decoding /scores: no entries (the prober's own comes first)"}
	}
	if len(scores) > MaxScoreEntries {
		return nil, &topology.RejectError{Reason: ReasonTooLarge, Detail: fmt.Sprintf("%d entries, at most %d", len(scores), MaxScoreEntries)}
	}
	seen := map[string]bool{}
	for i, s := range scores {
		switch {
		case s.Hostname == "" || len(s.Hostname) > 253:
			return nil, &topology.RejectError{Reason: topology.ReasonBadSite, Detail: fmt.Sprintf("entry %d: host name %.20q", i, s.Hostname)}
		case seen[s.Hostname]:
			return nil, &topology.RejectError{Reason: ReasonDuplicate, Detail: fmt.Sprintf("entry %d: host %q listed twice", i, s.Hostname)}
		case s.IPv4 != "" && net.ParseIP(s.IPv4).To4() == nil:
			return nil, &topology.RejectError{Reason: ReasonUndecodable, Detail: fmt.Sprintf("entry %d (%s): ipv4 %q is not an IPv4 address", i, s.Hostname, s.IPv4)}
		case !unit(s.LatencyEwmaScore):
			return nil, &topology.RejectError{Reason: topology.ReasonBadRTT, Detail: fmt.Sprintf("entry %d (%s): latencyEwmaScore %v is outside 0..1", i, s.Hostname, s.LatencyEwmaScore)}
		case !unit(s.CPUEwmaScore):
			return nil, &topology.RejectError{Reason: topology.ReasonBadLoad, Detail: fmt.Sprintf("entry %d (%s): cpuEwmaScore %v is outside 0..1", i, s.Hostname, s.CPUEwmaScore)}
		}
		seen[s.Hostname] = true
	}
	return scores, nil
}

func unit(v float64) bool { return !math.IsNaN(v) && v >= 0 && v <= 1 }

// ScoresObservations turns a prober's scores into RTT samples from the
// prober's site (the site of the first entry, the prober's own node) to each
// target's site. latencyEwmaScore is min(1, RTT/400 ms), so a score of 1 (no
// reply, or 400 ms and more) is a lost probe, not an RTT; below 1 the RTT is
// score × 400 ms. Entries naming no known node or site are skipped and
// counted in unmapped; entries of the prober's own site are left out.
func ScoresObservations(scores []probe.Score, sites Sites, at time.Time) (samples []topology.RTTSample, unmapped int, err error) {
	from, ok := sites.ofName(scores[0].Hostname)
	if !ok {
		if from, ok = sites.ofIP(scores[0].IPv4); !ok {
			return nil, 0, &topology.RejectError{Reason: ReasonUnknownSite, Detail: fmt.Sprintf("prober node %q maps to no site", scores[0].Hostname)}
		}
	}
	for _, s := range scores[1:] {
		to, ok := sites.ofName(s.Hostname)
		if !ok {
			to, ok = sites.ofIP(s.IPv4)
		}
		if !ok {
			unmapped++
			continue
		}
		if to == from {
			continue
		}
		m := topology.RTTSample{From: from, To: to, Sent: 1, At: at}
		if s.LatencyEwmaScore < 1 {
			m.Received, m.MeanMs = 1, s.LatencyEwmaScore*probe.LatencyScale
		}
		samples = append(samples, m)
	}
	return samples, unmapped, nil
}

// NewScores returns a source for the prober /scores at cfg.URL. It reads the
// RTTs; the CPU figure is not used: it comes without the node's pressure,
// which the prober's MQTT reports carry.
func NewScores(store *topology.Store, cfg HTTPConfig, sites Sites, clk clock.PassiveClock, m *Metrics, log *slog.Logger) *Poller {
	observe := func(body []byte, maxBytes int, peers Sites, at time.Time) ([]topology.RTTSample, int, error) {
		scores, err := DecodeScores(body, maxBytes)
		if err != nil {
			return nil, 0, err
		}
		return ScoresObservations(scores, peers, at)
	}
	return newPoller("scores", observe, store, cfg, sites, clk, m, log)
}
