package policy

import (
	"fmt"
	"strings"
	"time"
)

// AutonomyAnnotation is OpenYurt's per-node autonomy bound: how long the
// pods of a node whose heartbeats have stopped are left running. A Go
// duration ("90s", "24h"); "0" is no bound.
const AutonomyAnnotation = "node.openyurt.io/autonomy-duration"

// Fate is what a node whose Lease has stopped being renewed is judged to be.
type Fate string

const (
	// FateDead is a node gone: its pods are replaced now.
	FateDead Fate = "dead"
	// FateCutOff is a node only the control plane has lost (its site is
	// still alive to the data plane, or the node has an autonomy bound):
	// nothing new lands there, capacity is added elsewhere, and its pods
	// are kept.
	FateCutOff Fate = "cut_off"
)

// PartitionRule is how ning tells a node cut off from the control plane
// from a dead one.
type PartitionRule struct {
	// Window is how recent the data plane's last sign of the node's site
	// must be for the site to count as alive; 0 turns the data plane's
	// view off (every silent node without an autonomy annotation is dead).
	Window time.Duration
	// Autonomy bounds how long a node the data plane shows alive keeps its
	// pods, counted from its last renewal; 0: not at all (dead at once).
	Autonomy time.Duration
}

// Autonomy is a node's own autonomy bound (AutonomyAnnotation).
type Autonomy struct {
	// Set is true when the node carries the annotation.
	Set bool
	// Bound is how long its pods are kept; 0 with Set is no bound.
	Bound time.Duration
}

// NodeAutonomy reads a node's autonomy bound from its annotations. A value
// that does not parse, or is negative, is an error, and the node has none.
func NodeAutonomy(annotations map[string]string) (Autonomy, error) {
	v, ok := annotations[AutonomyAnnotation]
	if !ok {
		return Autonomy{}, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < 0 {
		return Autonomy{}, fmt.Errorf("annotation %s=%q: want a duration of 0 (no bound) or more, such as 24h", AutonomyAnnotation, v)
	}
	return Autonomy{Set: true, Bound: d}, nil
}

// Silence is what is known of a node whose Lease has stopped being renewed.
type Silence struct {
	// Since is when its Lease was last seen renewed.
	Since time.Time
	// Due is when its next renewal was due: a sign of its site from the
	// data plane after Due shows that the site outlived the control
	// plane's last word from the node.
	Due time.Time
	// Heard is the data plane's last sign of the node's site: a probe that
	// reached it (as of when the probes went out), or a report from it
	// (zero: none).
	Heard time.Time
	// SiteLinkUp is true when another node of the node's site still renews
	// its Lease: the site's link to the control plane is up, so the
	// silence is the node's own, and the data plane's signs of the site
	// (from its other nodes) say nothing of this node.
	SiteLinkUp bool
}

// Verdict is JudgeSilence's answer.
type Verdict struct {
	Fate Fate
	// Until is when a cut-off node's bound ends (zero: no bound, or dead).
	Until time.Time
	// Why says it for a person.
	Why string
}

// JudgeSilence decides whether a node whose Lease has stopped being renewed
// is dead or only cut off from the control plane, at now:
//
//   - a node with an autonomy annotation is cut off until its bound has
//     passed since Since (for ever with a bound of 0), whatever the data
//     plane says: its operator declared that it runs on its own (a whole
//     site whose WAN link is down is alive to nobody, and may still serve
//     its local users);
//   - otherwise it is cut off while the data plane has heard its site after
//     Due and within Window, Autonomy has not passed since Since, and no
//     other node of its site still reaches the control plane (SiteLinkUp: a
//     partition cuts a site off, not one of its nodes);
//   - otherwise it is dead.
func JudgeSilence(r PartitionRule, s Silence, a Autonomy, now time.Time) Verdict {
	if a.Set {
		if a.Bound == 0 {
			return Verdict{Fate: FateCutOff, Why: fmt.Sprintf("its %s of 0 keeps its pods for as long as it is silent", AutonomyAnnotation)}
		}
		until := s.Since.Add(a.Bound)
		if now.Before(until) {
			return Verdict{Fate: FateCutOff, Until: until, Why: fmt.Sprintf("it is within its %s of %s", AutonomyAnnotation, a.Bound)}
		}
		return Verdict{Fate: FateDead, Why: fmt.Sprintf("it is past its %s of %s", AutonomyAnnotation, a.Bound)}
	}
	if r.Window <= 0 || r.Autonomy <= 0 {
		return Verdict{Fate: FateDead, Why: "partitions are not told from deaths (no data-plane window or partition autonomy)"}
	}
	if s.SiteLinkUp {
		return Verdict{Fate: FateDead, Why: "another node of its site still renews its Lease: the site reaches the control plane, so the node itself is silent"}
	}
	alive := !s.Heard.IsZero() && s.Heard.After(s.Due) && now.Sub(s.Heard) <= r.Window
	if !alive {
		why := "the data plane has not heard its site since its Lease was due"
		if !s.Heard.IsZero() && s.Heard.After(s.Due) {
			why = fmt.Sprintf("the data plane last heard its site %s ago (window %s)", now.Sub(s.Heard).Round(time.Second), r.Window)
		}
		return Verdict{Fate: FateDead, Why: why}
	}
	until := s.Since.Add(r.Autonomy)
	if !now.Before(until) {
		return Verdict{Fate: FateDead, Why: fmt.Sprintf("it is past the partition autonomy of %s, though the data plane still hears its site", r.Autonomy)}
	}
	return Verdict{Fate: FateCutOff, Until: until, Why: fmt.Sprintf("the data plane heard its site %s ago: cut off from the control plane, not dead (its pods are kept for up to %s)",
		now.Sub(s.Heard).Round(time.Second), r.Autonomy)}
}
