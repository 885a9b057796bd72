package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/component-base/configz"
	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

// defaultSchedulerConfig is the stock kube-scheduler's configuration: the
// default profile only (ning's profile is the chart's ning-scheduler pod).
const defaultSchedulerConfig = `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: false
clientConnection:
  kubeconfig: %s
profiles:
  - schedulerName: default-scheduler
`

// startDefaultScheduler runs the stock kube-scheduler (v1.34.1, no ning
// plugins) in the daemon, for the pods that do not ask for ning, ning's own
// pods among them. It is the only Kubernetes component in the daemon's
// process besides etcd and the apiserver: the build of a separate binary
// would only repeat the scheduler packages ning's binary already links.
func (l *Lab) startDefaultScheduler(ctx context.Context) error {
	file := filepath.Join(StateDir, "kube-scheduler.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(defaultSchedulerConfig, Kubeconfig)), 0o600); err != nil {
		return err
	}
	opts := schedoptions.NewOptions()
	opts.ConfigFile = file
	opts.SecureServing.BindPort = 0
	cc, sched, err := schedapp.Setup(ctx, opts)
	if err != nil {
		return fmt.Errorf("kube-scheduler: %w", err)
	}
	configz.Delete("componentconfig")
	go func() {
		if err := schedapp.Run(ctx, cc, sched); err != nil && ctx.Err() == nil {
			l.log.Error("lab: kube-scheduler stopped", "err", err)
		}
	}()
	return nil
}
