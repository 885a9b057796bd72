package policy

import (
	"context"
	"fmt"
	"sort"

	v1 "k8s.io/api/core/v1"

	"github.com/ning-edge/ning/internal/placement"
)

// This file is the one home of seed 002's failover capacity: how many
// placeholders a workload asks for, on which sites they go, which
// workloads may share one, and which pods a preemptor may evict.

const (
	// AnnotationFailoverReserve is a workload annotation, read from its pod
	// template: how many replica-sized placeholders to keep for it, e.g.
	// ning.io/failover-reserve: "1".
	AnnotationFailoverReserve = "ning.io/failover-reserve"
	// LabelPlaceholder marks a placeholder pod: ning.io/placeholder: "true".
	// It is the only kind of pod a preemptor may evict (MayPreempt).
	LabelPlaceholder = "ning.io/placeholder"
)

// MaxFailoverReserve is the largest reserve a workload may ask for.
const MaxFailoverReserve = 100

// FailoverReserve reads the ning.io/failover-reserve annotation (from a pod
// template's annotations): 0 without one. A malformed value is an error
// naming the annotation; the caller counts it
// (ning_rescheduler_bad_failover_reserve_total) and keeps no reserve.
func FailoverReserve(annotations map[string]string) (int, error) {
	v, ok := annotations[AnnotationFailoverReserve]
	if !ok {
		return 0, nil
	}
	return parseCount("annotation", AnnotationFailoverReserve, v, "placeholders", "1", MaxFailoverReserve)
}

// Failover is where a workload's reserve goes: the site whose loss it
// guards against (the one holding most of its replicas) and the reserve
// units per site, on the sites the planner would fill if that site failed.
type Failover struct {
	// Failed is the site whose loss the reserve covers.
	Failed string
	// Units is the number of placeholders per site, adding up to the
	// reserve asked for; empty when no other usable site exists.
	Units map[string]int
}

// FailoverSites is where units placeholders of a workload running as
// current over p's sites go: the planner (placement.Plan) is asked to place
// all current replicas with the busiest site gone and only the usable sites
// open (usable: UsableSites, the same delay verdicts the scheduler and the
// rescheduler use for delay_<from> limits; nil means all). The sites that
// gain replicas in that plan get the units, the largest gain first, dealt
// round in that order when units exceed the gain.
func FailoverSites(ctx context.Context, p *placement.Problem, current placement.Placement, usable []bool, units int) (Failover, error) {
	out := Failover{Units: map[string]int{}}
	failed, total := -1, 0
	for j, v := range current {
		total += v
		if v > 0 && (failed < 0 || v > current[failed]) {
			failed = j
		}
	}
	if failed < 0 || units <= 0 {
		return out, nil
	}
	out.Failed = p.Sites[failed]
	open := make([]bool, len(p.Sites))
	anyOpen := false
	for j := range open {
		open[j] = j != failed && (usable == nil || usable[j])
		anyOpen = anyOpen || open[j]
	}
	if !anyOpen {
		return out, nil
	}
	q := Within(p, open)
	q.Min = nil
	q.Replicas = total
	if r := Room(q); r >= 0 && r < total {
		q.Replicas = r
	}
	x, err := placement.Plan(ctx, q)
	if err != nil {
		return out, fmt.Errorf("planning the loss of site %s: %w", out.Failed, err)
	}
	type gain struct{ site, n int }
	var gains []gain
	for j := range x {
		if d := x[j] - current[j]; j != failed && d > 0 {
			gains = append(gains, gain{j, d})
		}
	}
	if len(gains) == 0 { // the plan only shrinks: the reserve goes where it keeps most
		for j := range x {
			if open[j] && x[j] > 0 {
				gains = append(gains, gain{j, x[j]})
			}
		}
	}
	if len(gains) == 0 {
		return out, nil
	}
	sort.SliceStable(gains, func(a, b int) bool { return gains[a].n > gains[b].n })
	left := make([]int, len(gains))
	for units > 0 {
		dealt := false
		for k, g := range gains {
			if units > 0 && left[k] < g.n {
				left[k]++
				out.Units[p.Sites[g.site]]++
				units--
				dealt = true
			}
		}
		if !dealt { // every gain is covered: deal the rest round again
			clear(left)
		}
	}
	return out, nil
}

// Demand is one reserve unit a workload needs: a placeholder of Size at
// Site, used when a site in Failures is lost.
type Demand struct {
	Workload string
	Site     string
	Size     v1.ResourceList
	Failures []string
}

// Shareable reports whether two reserve units may share one placeholder:
// their failure sets (the sites whose loss sends each there) are disjoint,
// so no one site's loss needs both at once.
func Shareable(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return false
			}
		}
	}
	return true
}

// Placeholder is one placeholder pod to keep: at Site, of Size (the largest
// of its units' sizes per resource), covering the units in Covers.
type Placeholder struct {
	Site     string
	Size     v1.ResourceList
	Covers   []Demand
	failures []string
}

// Failures is the union of the failure sets of the units it covers.
func (p Placeholder) Failures() []string { return p.failures }

// PackReserve packs the reserve units onto placeholders: a unit joins an
// existing placeholder at its site when its failure set is disjoint from
// those of every unit there (Shareable), the one whose size needs the least
// growth first; otherwise it gets its own. Units are taken largest first, so
// that small ones fill shared placeholders sized by large ones. The result
// is ordered by site, then by the order made.
func PackReserve(demands []Demand) []Placeholder {
	ds := append([]Demand(nil), demands...)
	sort.SliceStable(ds, func(a, b int) bool { return sizeKey(ds[a].Size) > sizeKey(ds[b].Size) })
	var out []Placeholder
	for _, d := range ds {
		best, bestGrowth := -1, 0.0
		for k := range out {
			ph := &out[k]
			if ph.Site != d.Site || !Shareable(ph.failures, d.Failures) {
				continue
			}
			g := sizeKey(MaxResources(ph.Size, d.Size)) - sizeKey(ph.Size)
			if best < 0 || g < bestGrowth {
				best, bestGrowth = k, g
			}
		}
		if best < 0 {
			out = append(out, Placeholder{Site: d.Site})
			best = len(out) - 1
		}
		ph := &out[best]
		ph.Size = MaxResources(ph.Size, d.Size)
		ph.Covers = append(ph.Covers, d)
		ph.failures = append(ph.failures, d.Failures...)
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Site < out[b].Site })
	return out
}

// sizeKey orders sizes: CPU cores plus memory in GiB.
func sizeKey(r v1.ResourceList) float64 {
	cpu := r[v1.ResourceCPU]
	mem := r[v1.ResourceMemory]
	return cpu.AsApproximateFloat64() + mem.AsApproximateFloat64()/(1<<30)
}

// MaxResources is the largest of a and b per resource.
func MaxResources(a, b v1.ResourceList) v1.ResourceList {
	out := v1.ResourceList{}
	for _, r := range []v1.ResourceList{a, b} {
		for name, q := range r {
			if old, ok := out[name]; !ok || q.Cmp(old) > 0 {
				out[name] = q.DeepCopy()
			}
		}
	}
	return out
}

// PodRequests is what a pod asks the scheduler for: its containers'
// requests added up, or its largest init container's where that is more.
func PodRequests(pod *v1.Pod) v1.ResourceList {
	sum := v1.ResourceList{}
	for _, c := range pod.Spec.Containers {
		for name, q := range c.Resources.Requests {
			s := sum[name]
			s.Add(q)
			sum[name] = s
		}
	}
	for _, c := range pod.Spec.InitContainers {
		sum = MaxResources(sum, c.Resources.Requests)
	}
	return sum
}

// LargestRequests is the size of a workload's placeholder: the largest
// requests of its pods, per resource.
func LargestRequests(pods []*v1.Pod) v1.ResourceList {
	out := v1.ResourceList{}
	for _, pod := range pods {
		out = MaxResources(out, PodRequests(pod))
	}
	return out
}

// IsPlaceholder reports whether pod is a placeholder.
func IsPlaceholder(pod *v1.Pod) bool { return pod.Labels[LabelPlaceholder] == "true" }

// MayPreempt reports whether a preemptor may evict victim: only a
// placeholder may be, so that preemption, off for ning's scheduler
// otherwise, only frees the capacity held for failover.
func MayPreempt(victim *v1.Pod) bool { return IsPlaceholder(victim) }
