// Package scheduler runs kube-scheduler with ning's plugins registered out of
// tree, as kubernetes-sigs/scheduler-plugins does.
package scheduler

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/template"

	"k8s.io/component-base/configz"
	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"

	"github.com/ning-edge/ning/internal/plugins/cloudfallback"
	"github.com/ning-edge/ning/internal/plugins/networklatency"
	"github.com/ning-edge/ning/internal/plugins/nodeload"
	"github.com/ning-edge/ning/internal/plugins/placeholderpreemption"
	"github.com/ning-edge/ning/internal/plugins/trafficlatency"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/schedmetrics"
	"github.com/ning-edge/ning/internal/topology"
)

// ProfileName is the schedulerName that selects ning's profile.
const ProfileName = "ning-scheduler"

//go:embed default-config.yaml
var defaultConfig string

// ConfigParams fills the default configuration.
type ConfigParams struct {
	// Kubeconfig is the kubeconfig file; empty means in-cluster.
	Kubeconfig  string
	LeaderElect bool
	// QPS, when set, is the client's request rate and burst to the apiserver.
	QPS int
	// DefaultProfile adds kube-scheduler's default profile beside ning's.
	DefaultProfile bool
	// NoSpreadScoringProfile adds the default profile without
	// PodTopologySpread's scoring, named NoSpreadScoringName (benchmarks).
	NoSpreadScoringProfile bool
	// PerReplicaRPS, when positive, is TrafficLatency's perReplicaRPS: the
	// traffic one replica serves.
	PerReplicaRPS float64
	// DelayLayersMs are NetworkLatency's delayLayersMs: the delays (ms) the
	// sites are clustered for before any pod asks (seed 002's initial layer
	// delays); each delay_<from> value seen adds one more.
	DelayLayersMs []float64
	// Weights are the score plugins' weights; zero takes
	// policy.DefaultWeights, which the extender defaults to as well.
	Weights policy.Weights
}

// NoSpreadScoringName is the schedulerName of ConfigParams.NoSpreadScoringProfile.
const NoSpreadScoringName = "default-no-spread-scoring"

// NoSpreadScoringName lets the template name the profile.
func (ConfigParams) NoSpreadScoringName() string { return NoSpreadScoringName }

// DefaultConfig renders ning's default KubeSchedulerConfiguration.
func DefaultConfig(p ConfigParams) (string, error) {
	if p.Weights == (policy.Weights{}) {
		p.Weights = policy.DefaultWeights()
	}
	t, err := template.New("config").Parse(defaultConfig)
	if err != nil {
		return "", fmt.Errorf("parsing the default configuration: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, p); err != nil {
		return "", fmt.Errorf("rendering the default configuration: %w", err)
	}
	return b.String(), nil
}

// PluginOptions registers ning's plugins, all reading from store.
func PluginOptions(store *topology.Store) []schedapp.Option {
	m := schedmetrics.Register()
	return []schedapp.Option{
		schedapp.WithPlugin(networklatency.Name, networklatency.Factory(store, m)),
		schedapp.WithPlugin(trafficlatency.Name, trafficlatency.Factory(store, m)),
		schedapp.WithPlugin(nodeload.Name, nodeload.Factory(store, m)),
		schedapp.WithPlugin(cloudfallback.Name, cloudfallback.New),
		schedapp.WithPlugin(placeholderpreemption.Name, placeholderpreemption.New),
	}
}

// Run is Start that blocks: it returns once the scheduler has stopped,
// nil when that is because ctx ended.
func Run(ctx context.Context, dir, configYAML string, store *topology.Store) error {
	done, err := Start(ctx, dir, configYAML, store)
	if err != nil {
		return err
	}
	return Wait(ctx, done)
}

// Wait waits for the scheduler Start returned done for, and returns its
// error; a scheduler that stopped because ctx ended returns nil (kube-scheduler
// reports "finished without leader elect" even then).
func Wait(ctx context.Context, done <-chan error) error {
	err := <-done
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	return errors.New("scheduler: stopped")
}

// Start runs kube-scheduler in this process with ning's plugins and the given
// configuration (YAML), until ctx is done. It returns once the scheduler is
// built; the channel carries the result of running it. The configuration must
// not enable leader election (losing the lease exits the process). The
// scheduler's HTTPS endpoint is off.
func Start(ctx context.Context, dir, configYAML string, store *topology.Store) (<-chan error, error) {
	file := filepath.Join(dir, "ning-scheduler-config.yaml")
	if err := os.WriteFile(file, []byte(configYAML), 0o600); err != nil {
		return nil, fmt.Errorf("writing the scheduler configuration: %w", err)
	}
	opts := schedoptions.NewOptions()
	opts.ConfigFile = file
	opts.SecureServing.BindPort = 0
	cc, sched, err := schedapp.Setup(ctx, opts, PluginOptions(store)...)
	if err != nil {
		return nil, fmt.Errorf("setting up the scheduler: %w", err)
	}
	// Run registers its configuration with configz, once per process.
	configz.Delete("componentconfig")
	done := make(chan error, 1)
	go func() { done <- schedapp.Run(ctx, cc, sched) }()
	return done, nil
}
