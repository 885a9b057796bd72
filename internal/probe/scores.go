package probe

import (
	"encoding/json"
	"net/http"
	"sort"
	"sync"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
)

// LatencyScale is the RTT that maps to a latency score of 1.
const LatencyScale = 400.0 // ms

// Score is one entry of /scores, in seed 004's JSON shape.
//
// Semantics (written down because the seed got them backwards): both scores
// are usage, 0..1, HIGHER IS WORSE.
//   - latencyEwmaScore = min(1, EWMA RTT from this prober to the entry / 400 ms).
//     The prober's own node has 0. A target with no reply in the last round
//     keeps its EWMA; one never answered has 1.
//   - cpuEwmaScore = EWMA of CPU utilisation (0..1). A prober only measures its
//     own node, so only its own entry carries CPU; target entries have 0 and a
//     consumer takes each node's CPU from that node's own prober.
type Score struct {
	Hostname         string  `json:"hostname"`
	IPv4             string  `json:"ipv4"`
	CPUEwmaScore     float64 `json:"cpuEwmaScore"`
	LatencyEwmaScore float64 `json:"latencyEwmaScore"`
}

// Scores keeps the EWMAs behind /scores.
type Scores struct {
	alpha float64
	self  string

	mu      sync.Mutex
	cpu     float64
	haveCPU bool
	rtt     map[string]*ewmaEntry
}

type ewmaEntry struct {
	addr string
	ms   float64
	have bool
}

// NewScores keeps EWMAs with weight alpha for a new value.
func NewScores(selfNode string, alpha float64) *Scores {
	return &Scores{alpha: alpha, self: selfNode, rtt: map[string]*ewmaEntry{}}
}

func (s *Scores) ewma(old, v float64, have bool) float64 {
	if !have {
		return v
	}
	return s.alpha*v + (1-s.alpha)*old
}

// Update folds one report in.
func (s *Scores) Update(r *ningv1.LatencyReport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := r.GetLoad(); l != nil {
		s.cpu = s.ewma(s.cpu, l.GetCpuUtilisation(), s.haveCPU)
		s.haveCPU = true
	}
	for _, t := range r.GetTargets() {
		name := t.GetNode()
		if name == "" {
			name = t.GetSite()
		}
		e := s.rtt[name]
		if e == nil {
			e = &ewmaEntry{}
			s.rtt[name] = e
		}
		e.addr = t.GetAddress()
		if t.GetReceived() > 0 {
			e.ms = s.ewma(e.ms, t.GetAvgMs(), e.have)
			e.have = true
		}
	}
}

// List returns the entries, this node first, then by name.
func (s *Scores) List() []Score {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Score{{Hostname: s.self, CPUEwmaScore: s.cpu}}
	names := make([]string, 0, len(s.rtt))
	for n := range s.rtt {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		e := s.rtt[n]
		lat := 1.0
		if e.have {
			lat = min(e.ms/LatencyScale, 1)
		}
		out = append(out, Score{Hostname: n, IPv4: e.addr, LatencyEwmaScore: lat})
	}
	return out
}

// ServeHTTP serves the list as JSON.
func (s *Scores) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.List())
}
