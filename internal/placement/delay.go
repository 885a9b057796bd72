package placement

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// DelayLabelPrefix starts the seed's delay-constraint label, delay_<from>: "<ms>":
// the pod must run where the RTT from <from> (a node, site or pod name) is at
// most <ms> milliseconds.
const DelayLabelPrefix = "delay_"

// MaxDelayMs is the largest delay limit accepted in a label.
const MaxDelayMs = 60_000.0

// Constraint is one delay limit.
type Constraint struct {
	// Label is the label key it came from, e.g. delay_edge-1.
	Label string
	// From names a node, a site or a pod.
	From string
	// MaxMs is the largest RTT allowed from From's site to the pod's site.
	MaxMs float64
}

func (c Constraint) String() string {
	return fmt.Sprintf("%s %sms", c.Label, strconv.FormatFloat(c.MaxMs, 'f', -1, 64))
}

// ParseConstraints reads every delay_<from> label, in label order. A malformed
// one is an error that names the label, says what is wrong and what a valid
// one looks like; the constraints that did parse are returned beside it.
func ParseConstraints(labels map[string]string) ([]Constraint, error) {
	var keys []string
	for k := range labels {
		if strings.HasPrefix(k, DelayLabelPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []Constraint
	var errs []error
	for _, k := range keys {
		c, err := parseConstraint(k, labels[k])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, c)
	}
	return out, errors.Join(errs...)
}

func parseConstraint(key, value string) (Constraint, error) {
	from := strings.TrimPrefix(key, DelayLabelPrefix)
	if from == "" {
		return Constraint{}, fmt.Errorf("label %s names no node, site or pod after %q (want e.g. delay_edge-1: \"25\")", key, DelayLabelPrefix)
	}
	v := strings.TrimSuffix(value, "ms")
	ms, err := strconv.ParseFloat(v, 64)
	switch {
	case value == "":
		return Constraint{}, fmt.Errorf("label %s is empty (want a delay in milliseconds, e.g. \"25\")", key)
	case err != nil || math.IsNaN(ms) || math.IsInf(ms, 0):
		return Constraint{}, fmt.Errorf("label %s=%q is not a delay in milliseconds (want e.g. \"25\" or \"25ms\")", key, value)
	case ms < 0:
		return Constraint{}, fmt.Errorf("label %s=%q is negative (want a delay of at least 0 ms)", key, value)
	case ms > MaxDelayMs:
		return Constraint{}, fmt.Errorf("label %s=%q is above the %v ms limit", key, value, MaxDelayMs)
	}
	return Constraint{Label: key, From: from, MaxMs: ms}, nil
}

// RTTLookup gives the RTT between two sites; ok is false when it is unknown.
// *topology.Store implements it.
type RTTLookup interface {
	RTT(from, to string) (ms float64, ok bool)
}

// UnknownRTTPolicy says what a delay constraint does when the RTT it needs is unknown.
type UnknownRTTPolicy string

const (
	// FailClosed treats an unknown RTT as breaking the constraint (the default).
	FailClosed UnknownRTTPolicy = "FailClosed"
	// FailOpen treats an unknown RTT as meeting it.
	FailOpen UnknownRTTPolicy = "FailOpen"
)

// Resolved is a constraint whose From has been found to lie in site FromSite.
type Resolved struct {
	Constraint
	FromSite string
}

// Verdict is the outcome of the delay constraints for one site.
type Verdict struct {
	OK bool
	// Unknown is true when the verdict rests on an RTT that is not known.
	Unknown bool
	// Reason says which constraint failed and why, for a person to act on.
	Reason string
}

// CheckSite evaluates every constraint for a pod placed in site.
func CheckSite(cs []Resolved, site string, rtt RTTLookup, policy UnknownRTTPolicy) Verdict {
	v := Verdict{OK: true}
	for _, c := range cs {
		ms, ok := rtt.RTT(c.FromSite, site)
		if !ok {
			v.Unknown = true
			if policy == FailOpen {
				continue
			}
			return Verdict{Unknown: true, Reason: fmt.Sprintf("%s: no RTT measurement between %s and %s", c, c.FromSite, site)}
		}
		if ms > c.MaxMs {
			return Verdict{Unknown: v.Unknown, Reason: fmt.Sprintf("%s: %s is %sms from %s", c, site, strconv.FormatFloat(ms, 'f', 1, 64), describeFrom(c))}
		}
	}
	return v
}

func describeFrom(c Resolved) string {
	if c.From == c.FromSite {
		return c.From
	}
	return fmt.Sprintf("%s (site %s)", c.From, c.FromSite)
}
