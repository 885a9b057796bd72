package rescheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderConfig names the Lease that rescheduler replicas compete for.
type LeaderConfig struct {
	Namespace, Name string
	// Identity is this replica's name in the Lease (e.g. the pod name).
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod default to 15 s, 10 s
	// and 2 s, kube-scheduler's values.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// ErrLostLease is returned by Elect when this replica stopped being the leader.
var ErrLostLease = errors.New("lost the rescheduler lease")

// Elect runs run only while this replica holds the Lease, so that two
// replicas never act at once. It returns when ctx is done (nil) or when the
// lease is lost (ErrLostLease): the process should then exit and start over,
// as kube-scheduler does, rather than act on state from before.
func Elect(ctx context.Context, client kubernetes.Interface, c LeaderConfig, log *slog.Logger, run func(context.Context)) error {
	if c.Namespace == "" || c.Name == "" || c.Identity == "" {
		return fmt.Errorf("leader election needs a namespace, a lease name and an identity (got %q, %q, %q)", c.Namespace, c.Name, c.Identity)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: c.Namespace, Name: c.Name},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: c.Identity},
	}
	lost := false
	var started atomic.Bool
	done := make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   orDefault(c.LeaseDuration, 15*time.Second),
		RenewDeadline:   orDefault(c.RenewDeadline, 10*time.Second),
		RetryPeriod:     orDefault(c.RetryPeriod, 2*time.Second),
		ReleaseOnCancel: true,
		Name:            c.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				started.Store(true)
				defer close(done)
				log.InfoContext(ctx, "became the leader", "lease", c.Namespace+"/"+c.Name, "identity", c.Identity)
				run(ctx)
			},
			OnStoppedLeading: func() {
				if started.Load() && ctx.Err() == nil {
					lost = true
				}
			},
			OnNewLeader: func(id string) {
				if id != c.Identity {
					log.Info("another replica leads; standing by", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	le.Run(ctx)
	if started.Load() {
		<-done // run has seen its context end: no overlap with the next leader
	}
	if lost {
		return ErrLostLease
	}
	return nil
}

// Lead campaigns for the Lease until ctx is done, and calls run for each
// term it wins; a lost lease (after an apiserver outage longer than the renew
// deadline, say) ends the term, and Lead campaigns again in the same
// process. run must build its state afresh each term (a new Rescheduler,
// new caches), so that nothing from before the loss is acted on.
func Lead(ctx context.Context, client kubernetes.Interface, c LeaderConfig, log *slog.Logger, run func(context.Context)) error {
	for {
		err := Elect(ctx, client, c, log, run)
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, ErrLostLease) {
			return err
		}
		log.Warn("lost the lease; campaigning again", "lease", c.Namespace+"/"+c.Name)
	}
}

func orDefault(v, d time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return d
}
