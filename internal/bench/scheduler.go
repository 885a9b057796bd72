// Package bench measures ning against the stock Kubernetes scheduler on a real
// in-process control plane (no kubelets, as upstream's scheduler_perf does).
package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/scheduler"
	"github.com/ning-edge/ning/internal/topology"
)

// SchedulerOptions shapes a scheduling benchmark.
type SchedulerOptions struct {
	Nodes, Pods, Sites int
	// PodsPerWorkload groups pods under one ReplicaSet owner.
	PodsPerWorkload int
	// Rounds repeats the measurement, alternating which profile goes first.
	Rounds int
	Seed   uint64
	Log    *slog.Logger
	// ProfileDir, when set, receives a CPU profile of each measured window
	// (from the release of the pods to the last binding, control plane
	// included), named after its namespace: bench-<round>-<profile>.pprof.
	ProfileDir string
	// SpreadScoring (extender benchmark only) keeps PodTopologySpread's
	// scoring in the stock scheduler's profile: the whole default profile
	// instead of deploy/extender-config.yaml's.
	SpreadScoring bool
}

// ProfileResult is one profile's throughput.
type ProfileResult struct {
	PodsPerSecond float64 `json:"podsPerSecond"`
	Seconds       float64 `json:"seconds"`
}

// SchedulerResult is the JSON of `ning bench scheduler -o json`.
type SchedulerResult struct {
	Nodes   int           `json:"nodes"`
	Pods    int           `json:"pods"`
	Sites   int           `json:"sites"`
	Default ProfileResult `json:"default"`
	Ning    ProfileResult `json:"ning"`
	// Ratio is ning / default.
	Ratio float64 `json:"ratio"`
	// NoSpreadScoring is the default profile without PodTopologySpread's
	// scoring, which ning's profile also turns off; FairRatio, ning / it,
	// is what ning's own plugins cost.
	NoSpreadScoring ProfileResult `json:"noSpreadScoring"`
	FairRatio       float64       `json:"fairRatio"`
}

const gate = "ning.dev/bench"

// RunScheduler starts a control plane, creates the nodes, runs one scheduler
// with both the default profile and ning's, and schedules the same pods with
// each in turn, measuring from the release of the pods' scheduling gates to
// the last binding.
func RunScheduler(ctx context.Context, o SchedulerOptions) (*SchedulerResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, err := setUp(ctx, &o)
	if err != nil {
		return nil, err
	}
	defer c.close(cancel, o.Log)
	cfg, err := scheduler.DefaultConfig(scheduler.ConfigParams{Kubeconfig: c.cp.Kubeconfig, QPS: 5000, DefaultProfile: true, NoSpreadScoringProfile: true})
	if err != nil {
		return nil, err
	}
	if _, err := scheduler.Start(ctx, c.cp.Dir, cfg, c.store); err != nil {
		return nil, err
	}
	r, err := compare(ctx, c, o, "default-scheduler", scheduler.ProfileName, scheduler.NoSpreadScoringName)
	if err != nil {
		return nil, err
	}
	res := &SchedulerResult{Nodes: o.Nodes, Pods: o.Pods, Sites: o.Sites,
		Default: r["default-scheduler"], Ning: r[scheduler.ProfileName], NoSpreadScoring: r[scheduler.NoSpreadScoringName]}
	res.Ratio = res.Ning.PodsPerSecond / res.Default.PodsPerSecond
	res.FairRatio = res.Ning.PodsPerSecond / res.NoSpreadScoring.PodsPerSecond
	return res, nil
}

// benchStore holds the RTTs and traffic of a random edge topology over sites.
func benchStore(sites []string, seed uint64) (*topology.Store, error) {
	p := placement.RandomProblem(rand.New(rand.NewPCG(seed, 1)), placement.RandomOptions{Sites: len(sites)})
	store := topology.NewStore(topology.Config{}, clock.RealClock{})
	for i, a := range sites {
		if err := store.SetTraffic(a, p.Traffic[i], time.Time{}, true); err != nil {
			return nil, err
		}
		for j, b := range sites {
			if i != j {
				if err := store.SetStaticRTT(a, b, p.RTT[i][j]); err != nil {
					return nil, err
				}
			}
		}
	}
	return store, nil
}

// measure creates the pods gated, releases them all, and times until every one is bound.
func measure(ctx context.Context, c kubernetes.Interface, profile, ns string, sites []string, o SchedulerOptions) (float64, error) {
	if _, err := c.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return 0, err
	}
	workloads := (o.Pods + o.PodsPerWorkload - 1) / o.PodsPerWorkload
	owners := make([]*appsv1.ReplicaSet, workloads)
	for w := range owners {
		rs, err := c.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("w-%d", w)},
			Spec: appsv1.ReplicaSetSpec{
				Replicas: ptr.To(int32(o.PodsPerWorkload)),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"w": fmt.Sprint(w)}},
				Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"w": fmt.Sprint(w)}}, Spec: benchPodSpec(profile)},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			return 0, err
		}
		owners[w] = rs
	}
	if err := parallel(ctx, o.Pods, 32, func(ctx context.Context, i int) error {
		rs := owners[i/o.PodsPerWorkload]
		labels := map[string]string{"w": rs.Spec.Selector.MatchLabels["w"]}
		if i%5 == 0 {
			// A fifth of the pods carry a generous delay constraint.
			labels["delay_"+sites[i%len(sites)]] = "250"
		}
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%05d", i), Labels: labels,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}},
			Spec: benchPodSpec(profile),
		}
		pod.Spec.SchedulingGates = []v1.PodSchedulingGate{{Name: gate}}
		_, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		return err
	}); err != nil {
		return 0, err
	}

	var bound atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	f := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithNamespace(ns))
	inf := f.Core().V1().Pods().Informer()
	count := func(old, cur any) {
		p, ok := cur.(*v1.Pod)
		if !ok || p.Spec.NodeName == "" {
			return
		}
		if o, ok := old.(*v1.Pod); ok && o.Spec.NodeName != "" {
			return
		}
		if bound.Add(1) == int64(o.Pods) {
			once.Do(func() { close(done) })
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { count(nil, obj) },
		UpdateFunc: count,
	}); err != nil {
		return 0, err
	}
	stop := make(chan struct{})
	defer close(stop)
	f.Start(stop)
	f.WaitForCacheSync(stop)

	stopProfile, err := startProfile(o.ProfileDir, ns)
	if err != nil {
		return 0, err
	}
	defer stopProfile()
	start := time.Now()
	if err := parallel(ctx, o.Pods, 32, func(ctx context.Context, i int) error {
		name := fmt.Sprintf("p-%05d", i)
		pod, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		pod.Spec.SchedulingGates = nil
		_, err = c.CoreV1().Pods(ns).Update(ctx, pod, metav1.UpdateOptions{})
		return err
	}); err != nil {
		return 0, err
	}
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		return 0, fmt.Errorf("only %d of %d pods bound after 10 minutes", bound.Load(), o.Pods)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	elapsed := time.Since(start).Seconds()
	stopProfile()
	// Free the nodes for the next profile.
	if err := c.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{}); err != nil {
		return 0, fmt.Errorf("deleting the pods: %w", err)
	}
	return elapsed, nil
}

// startProfile starts a CPU profile into dir/name.pprof when dir is set; the
// returned stop may be called more than once.
func startProfile(dir, name string) (stop func(), err error) {
	if dir == "" {
		return func() {}, nil
	}
	return StartCPUProfile(filepath.Join(dir, name+".pprof"))
}

// StartCPUProfile writes a CPU profile to path until stop, which may be
// called more than once. `ning bench`'s --cpu-profile and --profile-dir both
// use it.
func StartCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", path, err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		})
	}, nil
}

func benchPodSpec(profile string) v1.PodSpec {
	return v1.PodSpec{
		SchedulerName: profile,
		Containers: []v1.Container{{
			Name: "app", Image: "registry.invalid/app:1",
			Resources: v1.ResourceRequirements{Requests: v1.ResourceList{
				v1.ResourceCPU: resource.MustParse("10m"), v1.ResourceMemory: resource.MustParse("16Mi"),
			}},
		}},
	}
}

// parallel runs f for 0..n-1 on workers goroutines and returns the first error.
func parallel(ctx context.Context, n, workers int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := atomic.Int64{}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					errs[w] = err
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
