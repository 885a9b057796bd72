package policy

import (
	"fmt"
	"strconv"

	v1 "k8s.io/api/core/v1"

	"github.com/ning-edge/ning/internal/placement"
)

// This file is the one home of seed 000's "until limit": how many replicas
// of one workload a site may hold. The scheduler's TrafficLatency Filter,
// the extender's /filter, the rescheduler's moves and the planner behind
// them all read the limits here.

const (
	// LabelMaxPerSite is a pod label (set in the workload's pod template,
	// beside its delay_<from> labels): the most replicas of the pod's
	// workload one site may hold, e.g. ning.io/max-per-site: "3".
	LabelMaxPerSite = "ning.io/max-per-site"
	// LabelSiteCapacity is a node label: the most replicas of any one
	// workload the node's site may hold, as a topology file's capacity
	// says. Where a site's nodes disagree the smallest holds.
	LabelSiteCapacity = "ning.io/site-capacity"
)

// MaxLimit is the largest limit a label may give.
const MaxLimit = 1_000_000

func parseLimit(key, value string) (int, error) {
	return parseCount("label", key, value, "replicas", "3", MaxLimit)
}

// parseCount reads a count in 0..hi from a label or annotation (what) key,
// naming it, the unit and an example in the error.
func parseCount(what, key, value, unit, example string, hi int) (int, error) {
	n, err := strconv.Atoi(value)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%s %s=%q is not a whole number of %s (want e.g. %q)", what, key, value, unit, example)
	case n < 0 || n > hi:
		return 0, fmt.Errorf("%s %s=%q is outside 0..%d", what, key, value, hi)
	}
	return n, nil
}

// MaxPerSite reads a pod's ning.io/max-per-site label: placement.Unlimited
// without one. A malformed one is an error naming the label.
func MaxPerSite(labels map[string]string) (int, error) {
	v, ok := labels[LabelMaxPerSite]
	if !ok {
		return placement.Unlimited, nil
	}
	return parseLimit(LabelMaxPerSite, v)
}

// NodeSiteCapacity reads a node's ning.io/site-capacity label:
// placement.Unlimited without one. A malformed one is an error naming the
// label; the caller counts it and ignores the label.
func NodeSiteCapacity(labels map[string]string) (int, error) {
	v, ok := labels[LabelSiteCapacity]
	if !ok {
		return placement.Unlimited, nil
	}
	return parseLimit(LabelSiteCapacity, v)
}

// SiteCapacities merges site capacities (from the topology file, from node
// labels, ...): the smallest given for a site holds. Unlimited entries are
// dropped.
func SiteCapacities(sources ...map[string]int) map[string]int {
	out := map[string]int{}
	for _, m := range sources {
		for site, c := range m {
			if c == placement.Unlimited {
				continue
			}
			if old, ok := out[site]; !ok || c < old {
				out[site] = c
			}
		}
	}
	return out
}

// SiteLimits is the most replicas of one workload each site may hold: the
// smaller of the workload's ning.io/max-per-site and the site's capacity.
type SiteLimits struct {
	// PerSite is the workload's limit, or placement.Unlimited.
	PerSite int
	// Sites are the sites' capacities (SiteCapacities); a site not listed
	// has none.
	Sites map[string]int
}

// LimitsOf is the limits of the pod's workload over sites of the given
// capacities; the error is a malformed ning.io/max-per-site label.
func LimitsOf(pod *v1.Pod, capacities map[string]int) (SiteLimits, error) {
	per, err := MaxPerSite(pod.Labels)
	if err != nil {
		return SiteLimits{}, err
	}
	return SiteLimits{PerSite: per, Sites: capacities}, nil
}

// None reports whether no site has a limit.
func (l SiteLimits) None() bool { return l.PerSite == placement.Unlimited && len(l.Sites) == 0 }

// Of is site's limit, or placement.Unlimited.
func (l SiteLimits) Of(site string) int {
	c, ok := l.Sites[site]
	switch {
	case !ok:
		return l.PerSite
	case l.PerSite == placement.Unlimited:
		return c
	}
	return min(c, l.PerSite)
}

// hasRoom reports whether a site of that limit holding count replicas can
// take one more.
func hasRoom(limit, count int) bool { return limit == placement.Unlimited || count < limit }

// Full reports whether site, holding count replicas of the workload (not
// counting the pod being placed), has no room for another.
func (l SiteLimits) Full(site string, count int) bool { return !hasRoom(l.Of(site), count) }

// Reason says why a full site takes no more of the workload, for a Filter's
// status and the extender's failed nodes.
func (l SiteLimits) Reason(site string, count int) string {
	c, ok := l.Sites[site]
	if ok && (l.PerSite == placement.Unlimited || c <= l.PerSite) {
		return fmt.Sprintf("site %s holds %d replicas of the workload, its capacity (%d)", site, count, c)
	}
	return fmt.Sprintf("site %s holds %d replicas of the workload, the most its %s label allows (%d)", site, count, LabelMaxPerSite, l.PerSite)
}

// Apply lowers the capacities of p (indexed like p.Sites) to the limits, so
// that the planner fills a site until its limit and deals the rest to the
// next sites in its order.
func (l SiteLimits) Apply(p *placement.Problem) {
	caps := make([]int, len(p.Sites))
	for j, site := range p.Sites {
		caps[j] = l.Of(site)
		if c := p.Capacity[j]; c != placement.Unlimited && (caps[j] == placement.Unlimited || c < caps[j]) {
			caps[j] = c
		}
	}
	p.Capacity = caps
}

// Room is how many replicas p's capacities hold in all, or -1 when some
// site has no limit.
func Room(p *placement.Problem) int {
	room := 0
	for _, c := range p.Capacity {
		if c == placement.Unlimited {
			return -1
		}
		room += c
	}
	return room
}

// Open says which usable sites (nil: all) can take one more replica of a
// workload running as x under p's capacities: where the scheduler's filters
// let its next replica go.
func Open(p *placement.Problem, x placement.Placement, usable []bool) []bool {
	out := make([]bool, len(x))
	for j := range x {
		out[j] = (usable == nil || usable[j]) && hasRoom(p.Capacity[j], x[j])
	}
	return out
}

// NodeCapacities is each site's capacity from its nodes'
// ning.io/site-capacity labels (the smallest where they disagree; a site
// with none is not listed), siteOf naming a node's site, and why each
// malformed label was ignored.
func NodeCapacities(nodes []*v1.Node, siteOf func(*v1.Node) string) (map[string]int, []error) {
	out := map[string]int{}
	var bad []error
	for _, n := range nodes {
		c, err := NodeSiteCapacity(n.Labels)
		if err != nil {
			bad = append(bad, fmt.Errorf("node %s: %w", n.Name, err))
			continue
		}
		if c == placement.Unlimited {
			continue
		}
		if old, ok := out[siteOf(n)]; !ok || c < old {
			out[siteOf(n)] = c
		}
	}
	return out, bad
}
