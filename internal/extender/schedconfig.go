package extender

import (
	"bytes"
	_ "embed" // the scheduler configuration template
	"fmt"
	"text/template"
	"time"
)

//go:embed scheduler-config.yaml
var schedulerConfig string

// SchedulerConfigParams fill the stock kube-scheduler's configuration.
type SchedulerConfigParams struct {
	// Kubeconfig is the kubeconfig file; empty means in-cluster.
	Kubeconfig  string
	LeaderElect bool
	// QPS, when set, is the client's request rate and burst to the apiserver.
	QPS int
	// SchedulerName names the (default) profile; empty means default-scheduler.
	SchedulerName string
	// SpreadScoring keeps PodTopologySpread's PreScore and Score, i.e. the
	// whole default profile. By default they are disabled, as in ning's
	// profile, so that both place pods alike.
	SpreadScoring bool
	// URL is the extender's URL prefix, e.g. http://ning-extender:8888.
	URL string
	// Weight multiplies the extender's 0..10 score (then x 10); 0 means 100.
	Weight           int
	NodeCacheCapable bool
	Ignorable        bool
	// Bind sets bindVerb: the extender binds each pod and counts it at
	// once, so that the replicas of a burst spread as the planner says.
	Bind bool
	// HTTPTimeout bounds each call; 0 means 5s.
	HTTPTimeout time.Duration
	// CAFile, set, is the CA file that verifies an https:// URL's
	// certificate (tlsConfig.caFile).
	CAFile string
}

// SchedulerConfig renders a KubeSchedulerConfiguration for the stock
// kube-scheduler calling ning's extender; deploy/extender-config.yaml is
// its in-cluster form.
func SchedulerConfig(p SchedulerConfigParams) (string, error) {
	if p.SchedulerName == "" {
		p.SchedulerName = "default-scheduler"
	}
	if p.Weight == 0 {
		p.Weight = 100
	}
	if p.HTTPTimeout == 0 {
		p.HTTPTimeout = 5 * time.Second
	}
	t, err := template.New("config").Parse(schedulerConfig)
	if err != nil {
		return "", fmt.Errorf("parsing the scheduler configuration: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, p); err != nil {
		return "", fmt.Errorf("rendering the scheduler configuration: %w", err)
	}
	return b.String(), nil
}

// DeployConfigParams are deploy/extender-config.yaml's: in-cluster, leader
// election on, the extender behind the Service ning-extender in kube-system
// over HTTPS (as the chart serves it), ignorable, so that stock scheduling
// goes on while the extender is down; bindVerb commented out, as the chart's
// extender.bind is off by default (the extender authenticates no client).
var DeployConfigParams = SchedulerConfigParams{
	LeaderElect:      true,
	URL:              "https://ning-extender.kube-system.svc:8888",
	NodeCacheCapable: true,
	Ignorable:        true,
	CAFile:           "/etc/kubernetes/ning-extender-ca.crt",
}
