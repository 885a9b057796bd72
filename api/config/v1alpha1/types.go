// Package v1alpha1 holds the typed arguments of ning's scheduler plugins, as
// written under pluginConfig in a KubeSchedulerConfiguration. Each type has
// SetDefaults and Validate; validation returns a field.ErrorList whose paths
// name the offending field.
package v1alpha1

//
// It imports nothing from ning's internal packages: internal/policy converts
// these types into the ones the placement code works with.
import (
	"fmt"
	"math"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// DefaultSiteLabel is the node label whose value names a node's site.
const DefaultSiteLabel = "topology.kubernetes.io/zone"

// UnknownRTTPolicy says what a delay constraint does when the RTT it needs is unknown.
type UnknownRTTPolicy string

const (
	// FailClosed treats an unknown RTT as breaking the constraint (the default).
	FailClosed UnknownRTTPolicy = "FailClosed"
	// FailOpen treats an unknown RTT as meeting it.
	FailOpen UnknownRTTPolicy = "FailOpen"
)

// Seed 004's load thresholds, NodeLoadArgs' defaults.
const (
	DefaultCPUFilter      = 0.85
	DefaultCPUPenaltyFrom = 0.70
	DefaultPenalty        = 0.15
)

// DefaultPodCountWeight is NodeLoadArgs' default podCountWeight: the pod-count
// term and the load term count alike, so one more replica of the workload on
// a node (its pod-count score 1 -> 1/2) weighs as much as 50 points of CPU
// utilisation. Load reports are a probe period old and cannot see a burst of
// replicas; the pod count sees each one as it is reserved.
const DefaultPodCountWeight = 0.5

// MissingLoadPolicy says what NodeLoad does with a node that has no fresh
// load report.
type MissingLoadPolicy string

const (
	// MissingLoadNeutral passes the node with the neutral load score (the
	// default): a prober that is down or late never takes nodes away.
	MissingLoadNeutral MissingLoadPolicy = "Neutral"
	// MissingLoadFilter filters the node out, as seed 004's extender does
	// ("no probe data available").
	MissingLoadFilter MissingLoadPolicy = "Filter"
)

// NetworkLatencyArgs configures the NetworkLatency plugin (delay constraints).
type NetworkLatencyArgs struct {
	// SiteLabel is the node label whose value names a node's site.
	SiteLabel string `json:"siteLabel,omitempty"`
	// UnknownRTT is FailClosed (an unknown RTT breaks a constraint) or FailOpen.
	// Either way, when every site would fail only because RTTs are unknown, the
	// plugin fails open for that pod rather than filter every node.
	UnknownRTT UnknownRTTPolicy `json:"unknownRTT,omitempty"`
	// DelayLayersMs are the delays, in ms, the sites are clustered for before
	// any pod asks (seed 002's initial layer delays); each distinct delay a
	// pod's delay_<from> label asks for is added.
	DelayLayersMs []float64 `json:"delayLayersMs,omitempty"`
	// DelayLayerToleranceMs is how far an RTT may move before the delay
	// layers are rebuilt; nil means DefaultDelayLayerToleranceMs.
	DelayLayerToleranceMs *float64 `json:"delayLayerToleranceMs,omitempty"`
}

// DefaultDelayLayerToleranceMs is NetworkLatencyArgs.DelayLayerToleranceMs's default.
const DefaultDelayLayerToleranceMs = 1.0

// MaxDelayLayers bounds NetworkLatencyArgs.DelayLayersMs.
const MaxDelayLayers = 64

// maxDelayMs is the largest delay a layer or a delay_<from> label takes.
const maxDelayMs = 60_000.0

// SetDefaults fills unset fields.
func (a *NetworkLatencyArgs) SetDefaults() {
	if a.SiteLabel == "" {
		a.SiteLabel = DefaultSiteLabel
	}
	if a.UnknownRTT == "" {
		a.UnknownRTT = FailClosed
	}
	if a.DelayLayerToleranceMs == nil {
		t := DefaultDelayLayerToleranceMs
		a.DelayLayerToleranceMs = &t
	}
}

// Validate checks the arguments.
func (a *NetworkLatencyArgs) Validate(path *field.Path) field.ErrorList {
	errs := validateSiteLabel(a.SiteLabel, path.Child("siteLabel"))
	if a.UnknownRTT != FailClosed && a.UnknownRTT != FailOpen {
		errs = append(errs, field.NotSupported(path.Child("unknownRTT"), a.UnknownRTT, []string{string(FailClosed), string(FailOpen)}))
	}
	if len(a.DelayLayersMs) > MaxDelayLayers {
		errs = append(errs, field.TooMany(path.Child("delayLayersMs"), len(a.DelayLayersMs), MaxDelayLayers))
	}
	for i, d := range a.DelayLayersMs {
		if math.IsNaN(d) || d < 0 || d > maxDelayMs {
			errs = append(errs, field.Invalid(path.Child("delayLayersMs").Index(i), d, fmt.Sprintf("want a delay in ms from 0 to %v", maxDelayMs)))
		}
	}
	if t := a.DelayLayerToleranceMs; t != nil && (math.IsNaN(*t) || *t < 0 || *t > maxDelayMs) {
		errs = append(errs, field.Invalid(path.Child("delayLayerToleranceMs"), *t, fmt.Sprintf("want a tolerance in ms from 0 to %v", maxDelayMs)))
	}
	return errs
}

// TrafficLatencyArgs configures the TrafficLatency plugin (traffic-weighted RTT).
type TrafficLatencyArgs struct {
	// SiteLabel is the node label whose value names a node's site.
	SiteLabel string `json:"siteLabel,omitempty"`
	// PerReplicaRPS is how many requests/s one replica serves; 0 means no limit.
	PerReplicaRPS float64 `json:"perReplicaRPS,omitempty"`
}

// SetDefaults fills unset fields.
func (a *TrafficLatencyArgs) SetDefaults() {
	if a.SiteLabel == "" {
		a.SiteLabel = DefaultSiteLabel
	}
}

// Validate checks the arguments.
func (a *TrafficLatencyArgs) Validate(path *field.Path) field.ErrorList {
	errs := validateSiteLabel(a.SiteLabel, path.Child("siteLabel"))
	if !(a.PerReplicaRPS >= 0) || a.PerReplicaRPS > 1e12 {
		errs = append(errs, field.Invalid(path.Child("perReplicaRPS"), a.PerReplicaRPS, "must be a finite number >= 0"))
	}
	return errs
}

// NodeLoadArgs configures the NodeLoad plugin (CPU and PSI from prober reports).
type NodeLoadArgs struct {
	// CPUFilter filters out nodes at or above this CPU utilisation (0..1).
	CPUFilter *float64 `json:"cpuFilter,omitempty"`
	// CPUPenaltyFrom starts the score penalty zone (0..1).
	CPUPenaltyFrom *float64 `json:"cpuPenaltyFrom,omitempty"`
	// Penalty is subtracted from the 0..1 score in the penalty zone.
	Penalty *float64 `json:"penalty,omitempty"`
	// PSI thresholds (avg10, percent); 0 is off.
	PSI PSIThresholds `json:"psi,omitempty"`
	// PodCountWeight (0..1) is the share of the score given to the number of
	// the workload's pods already on the node (seed 003's pod count), so that
	// a site's replicas spread over its nodes: the score is
	// (1-w) x load score + w / (1 + pods). 0 turns the term off.
	PodCountWeight *float64 `json:"podCountWeight,omitempty"`
	// MissingLoad is Neutral (a node without a fresh load report passes with
	// the neutral load score, the default) or Filter (it is filtered out).
	MissingLoad MissingLoadPolicy `json:"missingLoad,omitempty"`
}

// PSIThresholds filter out nodes whose pressure stall information (avg10,
// percent) reaches a threshold.
type PSIThresholds struct {
	CPU    PressureThreshold `json:"cpu,omitempty"`
	Memory PressureThreshold `json:"memory,omitempty"`
	IO     PressureThreshold `json:"io,omitempty"`
}

// PressureThreshold is the limit on the "some" and "full" lines; 0 is off.
type PressureThreshold struct {
	Some float64 `json:"some,omitempty"`
	Full float64 `json:"full,omitempty"`
}

// SetDefaults fills unset fields with seed 004's thresholds (85 %, 70 %,
// 0.15), DefaultPodCountWeight and MissingLoadNeutral.
func (a *NodeLoadArgs) SetDefaults() {
	set := func(p **float64, v float64) {
		if *p == nil {
			*p = &v
		}
	}
	set(&a.CPUFilter, DefaultCPUFilter)
	set(&a.CPUPenaltyFrom, DefaultCPUPenaltyFrom)
	set(&a.Penalty, DefaultPenalty)
	set(&a.PodCountWeight, DefaultPodCountWeight)
	if a.MissingLoad == "" {
		a.MissingLoad = MissingLoadNeutral
	}
}

// Validate checks the arguments; call SetDefaults first.
func (a *NodeLoadArgs) Validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	inRange := func(p *field.Path, v *float64, hi float64) {
		switch {
		case v == nil:
			errs = append(errs, field.Required(p, "call SetDefaults first"))
		case math.IsNaN(*v) || *v < 0 || *v > hi:
			errs = append(errs, field.Invalid(p, *v, fmt.Sprintf("must be in 0..%v", hi)))
		}
	}
	inRange(path.Child("cpuFilter"), a.CPUFilter, 1)
	inRange(path.Child("cpuPenaltyFrom"), a.CPUPenaltyFrom, 1)
	inRange(path.Child("penalty"), a.Penalty, 1)
	inRange(path.Child("podCountWeight"), a.PodCountWeight, 1)
	if a.MissingLoad != MissingLoadNeutral && a.MissingLoad != MissingLoadFilter {
		errs = append(errs, field.NotSupported(path.Child("missingLoad"), a.MissingLoad, []string{string(MissingLoadNeutral), string(MissingLoadFilter)}))
	}
	psi := path.Child("psi")
	for _, r := range []struct {
		name string
		t    PressureThreshold
	}{{"cpu", a.PSI.CPU}, {"memory", a.PSI.Memory}, {"io", a.PSI.IO}} {
		inRange(psi.Child(r.name, "some"), &r.t.Some, 100)
		inRange(psi.Child(r.name, "full"), &r.t.Full, 100)
	}
	if len(errs) == 0 && *a.CPUPenaltyFrom > *a.CPUFilter {
		errs = append(errs, field.Invalid(path.Child("cpuPenaltyFrom"), *a.CPUPenaltyFrom,
			fmt.Sprintf("must not be above cpuFilter (%v)", *a.CPUFilter)))
	}
	return errs
}

// CloudFallbackArgs configures the CloudFallback plugin: nodes carrying the
// cloud label are used only when no edge node passes the filters.
type CloudFallbackArgs struct {
	// CloudLabel and CloudValue mark cloud nodes (default kubernetes.io/role=cloud).
	CloudLabel string `json:"cloudLabel,omitempty"`
	CloudValue string `json:"cloudValue,omitempty"`
}

// SetDefaults fills unset fields.
func (a *CloudFallbackArgs) SetDefaults() {
	if a.CloudLabel == "" {
		a.CloudLabel = "kubernetes.io/role"
	}
	if a.CloudValue == "" {
		a.CloudValue = "cloud"
	}
}

// Validate checks the arguments.
func (a *CloudFallbackArgs) Validate(path *field.Path) field.ErrorList {
	errs := validateSiteLabel(a.CloudLabel, path.Child("cloudLabel"))
	for _, msg := range validation.IsValidLabelValue(a.CloudValue) {
		errs = append(errs, field.Invalid(path.Child("cloudValue"), a.CloudValue, msg))
	}
	return errs
}

func validateSiteLabel(key string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsQualifiedName(key) {
		errs = append(errs, field.Invalid(path, key, msg))
	}
	return errs
}
