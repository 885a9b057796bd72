// Package v1alpha1 holds the typed arguments of ning's scheduler plugins, as
// written under pluginConfig in a KubeSchedulerConfiguration. Each type has
// SetDefaults and Validate; validation returns a field.ErrorList whose paths
// name the offending field.
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/topology"
)

// NetworkLatencyArgs configures the NetworkLatency plugin (delay constraints).
type NetworkLatencyArgs struct {
	// SiteLabel is the node label whose value names a node's site.
	SiteLabel string `json:"siteLabel,omitempty"`
	// UnknownRTT is FailClosed (an unknown RTT breaks a constraint) or FailOpen.
	// Either way, when every site would fail only because RTTs are unknown, the
	// plugin fails open for that pod rather than filter every node.
	UnknownRTT placement.UnknownRTTPolicy `json:"unknownRTT,omitempty"`
}

// SetDefaults fills unset fields.
func (a *NetworkLatencyArgs) SetDefaults() {
	if a.SiteLabel == "" {
		a.SiteLabel = topology.DefaultSiteLabel
	}
	if a.UnknownRTT == "" {
		a.UnknownRTT = placement.FailClosed
	}
}

// Validate checks the arguments.
func (a *NetworkLatencyArgs) Validate(path *field.Path) field.ErrorList {
	errs := validateSiteLabel(a.SiteLabel, path.Child("siteLabel"))
	if a.UnknownRTT != placement.FailClosed && a.UnknownRTT != placement.FailOpen {
		errs = append(errs, field.NotSupported(path.Child("unknownRTT"), a.UnknownRTT, []string{string(placement.FailClosed), string(placement.FailOpen)}))
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
		a.SiteLabel = topology.DefaultSiteLabel
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
	PSI topology.PSI `json:"psi,omitempty"`
}

// SetDefaults fills unset fields with seed 004's thresholds (85 %, 70 %, 0.15).
func (a *NodeLoadArgs) SetDefaults() {
	d := placement.DefaultLoadPolicy()
	if a.CPUFilter == nil {
		a.CPUFilter = &d.CPUFilter
	}
	if a.CPUPenaltyFrom == nil {
		a.CPUPenaltyFrom = &d.CPUPenaltyFrom
	}
	if a.Penalty == nil {
		a.Penalty = &d.Penalty
	}
}

// Policy returns the load policy the arguments describe; call SetDefaults first.
func (a *NodeLoadArgs) Policy() placement.LoadPolicy {
	return placement.LoadPolicy{CPUFilter: *a.CPUFilter, CPUPenaltyFrom: *a.CPUPenaltyFrom, Penalty: *a.Penalty, PSI: a.PSI}
}

// Validate checks the arguments; call SetDefaults first.
func (a *NodeLoadArgs) Validate(path *field.Path) field.ErrorList {
	if err := a.Policy().Validate(); err != nil {
		return field.ErrorList{field.Invalid(path, a.Policy(), err.Error())}
	}
	return nil
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
