package topology

import (
	"fmt"
	"math"
)

// ReasonImplausibleRTT rejects (or flags) a measured RTT that the other
// sites' own measurements make physically implausible.
const ReasonImplausibleRTT = "implausible_rtt"

// Cross-check modes.
const (
	CrossCheckOff    = "off"
	CrossCheckFlag   = "flag"
	CrossCheckReject = "reject"
)

// CrossCheck tunes the plausibility check of a measured RTT from site S to
// site T against what other reporters measured. Only links measured by a
// site other than S are evidence (S's reporter chose its own figures):
//   - the reverse direction T -> S, measured by T, may differ from it by at
//     most Factor (plus SlackMs);
//   - for every site X that measured both X -> S and X -> T, the triangle
//     bounds |d(X,S) - d(X,T)| <= d(S,T) <= d(X,S) + d(X,T) hold within
//     Factor and SlackMs (routing breaks the triangle inequality a little,
//     never by a factor of three).
//
// A sample without such evidence passes.
type CrossCheck struct {
	// Mode is CrossCheckFlag (count and log, still store), CrossCheckReject
	// (refuse the report) or CrossCheckOff; empty means CrossCheckFlag.
	Mode string
	// Factor is how far a figure may stray from its bounds, multiplicatively;
	// zero means DefaultCrossCheckFactor.
	Factor float64
	// SlackMs is the absolute tolerance in ms; zero means DefaultCrossCheckSlackMs.
	SlackMs float64
}

// Cross-check defaults.
const (
	DefaultCrossCheckFactor  = 3.0
	DefaultCrossCheckSlackMs = 5.0
)

// WithDefaults fills the zero fields and checks Mode.
func (c CrossCheck) WithDefaults() (CrossCheck, error) {
	switch c.Mode {
	case "":
		c.Mode = CrossCheckFlag
	case CrossCheckFlag, CrossCheckReject, CrossCheckOff:
	default:
		return c, fmt.Errorf("RTT cross-check mode %q: want flag, reject or off", c.Mode)
	}
	if c.Factor <= 1 || math.IsNaN(c.Factor) {
		c.Factor = DefaultCrossCheckFactor
	}
	if c.SlackMs <= 0 || math.IsNaN(c.SlackMs) {
		c.SlackMs = DefaultCrossCheckSlackMs
	}
	return c, nil
}

// CheckRTT returns a *RejectError with ReasonImplausibleRTT when the other
// reporters' fresh measurements make m implausible, nil otherwise (also
// when nothing contradicts it, or m received no reply). It stores nothing.
func (s *Store) CheckRTT(m RTTSample, c CrossCheck) error {
	if m.Received == 0 || m.From == m.To || c.Mode == CrossCheckOff {
		return nil
	}
	r := m.MeanMs
	s.mu.RLock()
	defer s.mu.RUnlock()
	measured := func(from, to string) (float64, bool) {
		if l := s.links[[2]string{from, to}]; l != nil && s.fresh(l) {
			return l.RTTMs, true
		}
		return 0, false
	}
	if rev, ok := measured(m.To, m.From); ok && math.Max(r, rev) > c.Factor*math.Min(r, rev)+c.SlackMs {
		return reject(ReasonImplausibleRTT, "%s -> %s %.3f ms disagrees with %s's own %s -> %s %.3f ms",
			m.From, m.To, r, m.To, m.To, m.From, rev)
	}
	// A witness measured both m.From and m.To: the shorter of the two
	// lists holds them all, so the cost follows the witnesses, not the
	// number of sites.
	witnesses := s.measuredBy[m.From]
	if other := s.measuredBy[m.To]; len(other) < len(witnesses) {
		witnesses = other
	}
	for _, x := range witnesses {
		if x == m.From || x == m.To {
			continue
		}
		xs, ok1 := measured(x, m.From)
		xt, ok2 := measured(x, m.To)
		if !ok1 || !ok2 {
			continue
		}
		if lo := math.Abs(xs - xt); r < lo/c.Factor-c.SlackMs {
			return reject(ReasonImplausibleRTT, "%s -> %s %.3f ms is far below the %.3f ms that %s's measurements (%s %.3f ms, %s %.3f ms) require",
				m.From, m.To, r, lo, x, m.From, xs, m.To, xt)
		}
		if hi := xs + xt; r > c.Factor*hi+c.SlackMs {
			return reject(ReasonImplausibleRTT, "%s -> %s %.3f ms is far above the %.3f ms path through %s (%s %.3f ms, %s %.3f ms)",
				m.From, m.To, r, hi, x, m.From, xs, m.To, xt)
		}
	}
	return nil
}
