package source

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/probe"
	"github.com/ning-edge/ning/internal/topology"
)

// MaxScoreEntries bounds one /scores answer.
const MaxScoreEntries = 10_000

// DecodeScores decodes a prober's /scores body (seed 004's shape, as `ning
// probe` serves it), bounded to maxBytes, and checks every entry: a host
// name, an IPv4 address or none, latencyEwmaScore finite and within 0..1, no
// host twice. Errors are *topology.RejectError. cpuEwmaScore is not checked
// here: only the first entry's is read (ScoresLoad checks it), and a bad one
// loses the CPU figure, not the RTTs.
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

// ScoresLoad returns the load the prober's own entry (the first) gives its
// node: cpuEwmaScore, the EWMA of the node's CPU utilisation, with no
// pressure (/scores carries none). The node is the entry's host name when
// that is a known node, else the node of its ipv4; "" when neither is (the
// figure then belongs to no node). A cpuEwmaScore that is not a utilisation
// (NaN, negative, over 1) is a *topology.RejectError, reason bad_load.
func ScoresLoad(scores []probe.Score, sites Sites, at time.Time) (node string, l topology.Load, err error) {
	own := scores[0]
	if !unit(own.CPUEwmaScore) {
		return "", topology.Load{}, &topology.RejectError{Reason: topology.ReasonBadLoad,
			Detail: fmt.Sprintf("entry 0 (%s): cpuEwmaScore %v is not a CPU utilisation in 0..1", own.Hostname, own.CPUEwmaScore)}
	}
	if _, ok := sites.NodeSite[own.Hostname]; ok {
		node = own.Hostname
	} else if n, ok := sites.IPNode[own.IPv4]; ok && own.IPv4 != "" {
		node = n
	}
	if node == "" {
		return "", topology.Load{}, nil
	}
	return node, topology.Load{CPU: own.CPUEwmaScore, Updated: at}, nil
}

// scoresLoads writes the CPU figures of one /scores source to the store,
// deferring to any other source of a node's load.
type scoresLoads struct {
	store *topology.Store
	mu    sync.Mutex
	// wrote is, per node, the time of this source's last write.
	wrote map[string]time.Time
}

// observe stores the prober node's CPU figure, unless another source
// reports that node's load: when the node's fresh load is not the one this
// source last wrote (or carries pressure, which /scores never does), it came
// from the prober's MQTT reports, which carry the node's PSI beside its CPU;
// a /scores write would replace that PSI with zeros. unmapped is true when
// the figure names no known node.
func (s *scoresLoads) observe(scores []probe.Score, sites Sites, at time.Time) (unmapped bool, err error) {
	node, l, err := ScoresLoad(scores, sites, at)
	if err != nil || node == "" {
		return err == nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, fresh := s.store.Load(node); fresh && (!cur.Updated.Equal(s.wrote[node]) || cur.PSI != (topology.PSI{})) {
		return false, nil
	}
	if err := s.store.ObserveLoad(node, l); err != nil {
		return false, err
	}
	s.wrote[node] = at
	return false, nil
}

// NewScores returns a source for the prober /scores at cfg.URL. It reads the
// RTTs (ScoresObservations) and the CPU utilisation of the prober's node
// (ScoresLoad), which, without any other load source, gives NodeLoad and the
// extender their CPU filter and score. The two are independent: a refused
// CPU figure is counted in ning_reports_rejected_total{reason="bad_load"}
// and logged, and the RTTs of the same answer are stored all the same. A
// node whose load also comes over MQTT takes it from there (see
// scoresLoads.observe).
func NewScores(store *topology.Store, cfg HTTPConfig, sites Sites, clk clock.PassiveClock, m *Metrics, log *slog.Logger) *Poller {
	loads := &scoresLoads{store: store, wrote: map[string]time.Time{}}
	observe := func(body []byte, maxBytes int, peers Sites, at time.Time) ([]topology.RTTSample, int, error) {
		scores, err := DecodeScores(body, maxBytes)
		if err != nil {
			return nil, 0, err
		}
		samples, unmapped, err := ScoresObservations(scores, peers, at)
		if err != nil {
			return nil, 0, err
		}
		switch noNode, err := loads.observe(scores, peers, at); {
		case err != nil:
			reason := rejectReason(err)
			m.rejected.WithLabelValues(reason).Inc()
			log.Warn("CPU figure refused; the RTTs of the same answer are kept", "source", "scores", "url", cfg.URL, "reason", reason, "err", err)
		case noNode:
			unmapped++
		}
		return samples, unmapped, nil
	}
	return newPoller("scores", observe, store, cfg, sites, clk, m, log)
}
