package devcluster

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
	"k8s.io/kubernetes/pkg/controller/deployment"
	"k8s.io/kubernetes/pkg/controller/disruption"
	"k8s.io/kubernetes/pkg/controller/replicaset"
)

// StartWorkloadControllers runs the real ReplicaSet and Deployment
// controllers until ctx is done. wait blocks until they and their informers
// have stopped.
func StartWorkloadControllers(ctx context.Context, c kubernetes.Interface) (wait func(), err error) {
	f := informers.NewSharedInformerFactory(c, 0)
	rsc := replicaset.NewReplicaSetController(ctx, f.Apps().V1().ReplicaSets(), f.Core().V1().Pods(), c, replicaset.BurstReplicas)
	dc, err := deployment.NewDeploymentController(ctx, f.Apps().V1().Deployments(), f.Apps().V1().ReplicaSets(), f.Core().V1().Pods(), c)
	if err != nil {
		return nil, fmt.Errorf("deployment controller: %w", err)
	}
	f.Start(ctx.Done())
	var wg sync.WaitGroup
	wg.Go(func() { rsc.Run(ctx, 2) })
	wg.Go(func() { dc.Run(ctx, 2) })
	return func() { wg.Wait(); f.Shutdown() }, nil
}

// StartDisruptionController runs the real disruption controller until ctx is
// done: it keeps PodDisruptionBudget status current, without which the
// Eviction API refuses every eviction of a pod a budget covers. wait blocks
// until it and its informers have stopped.
func StartDisruptionController(ctx context.Context, cfg *rest.Config) (wait func(), err error) {
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("disruption controller client: %w", err)
	}
	disc := memory.NewMemCacheClient(c.Discovery())
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(disc)
	scales, err := scale.NewForConfig(cfg, mapper, dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(c.Discovery()))
	if err != nil {
		return nil, fmt.Errorf("disruption controller scale client: %w", err)
	}
	f := informers.NewSharedInformerFactory(c, 0)
	dc := disruption.NewDisruptionController(ctx, f.Core().V1().Pods(), f.Policy().V1().PodDisruptionBudgets(),
		f.Core().V1().ReplicationControllers(), f.Apps().V1().ReplicaSets(), f.Apps().V1().Deployments(),
		f.Apps().V1().StatefulSets(), c, mapper, scales, c.Discovery())
	f.Start(ctx.Done())
	var wg sync.WaitGroup
	wg.Go(func() { dc.Run(ctx) })
	return func() { wg.Wait(); f.Shutdown() }, nil
}

// RunControllers runs the workload and disruption controllers against the
// cluster until ctx is done, and returns once they have stopped.
func (c *Cluster) RunControllers(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	waitWorkload, err := StartWorkloadControllers(ctx, c.Client)
	if err != nil {
		return err
	}
	waitDisruption, err := StartDisruptionController(ctx, c.Config)
	if err != nil {
		cancel()
		waitWorkload()
		return err
	}
	<-ctx.Done()
	waitWorkload()
	waitDisruption()
	return nil
}
