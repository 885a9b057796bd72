package policy

import (
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// MoveRule is how long a workload is left alone after a move: the loop
// prevention of the rescheduler, as the descheduler's users ask for
// (descheduler#994, #1064, #1695).
type MoveRule struct {
	// Cooldown is the wait after any move of the workload; 0 is none.
	Cooldown time.Duration
	// BackoffBase is the first wait after a bounce (a replacement landing
	// back on the site it was moved from), doubled for each bounce in a
	// row; it is at least Cooldown.
	BackoffBase time.Duration
	// BackoffMax bounds the wait.
	BackoffMax time.Duration
}

// LastMove is what the rescheduler remembers of a workload's last move.
type LastMove struct {
	At time.Time
	// From is the site the evicted pod ran on, To the site the replacement
	// was predicted to land on.
	From, To string
	// Bounces counts the moves in a row whose replacement landed back on
	// From.
	Bounces int
}

// Wait is how long after m the workload is left alone: Cooldown, or after
// k bounces in a row max(BackoffBase, Cooldown)·2^(k-1), at most BackoffMax
// (and never less than Cooldown).
func (r MoveRule) Wait(m LastMove) time.Duration {
	if m.Bounces <= 0 {
		return r.Cooldown
	}
	d := max(r.BackoffBase, r.Cooldown)
	for i := 1; i < m.Bounces && d < r.BackoffMax; i++ {
		d *= 2
	}
	return max(min(d, r.BackoffMax), r.Cooldown)
}

// Until is when the workload may be moved again.
func (r MoveRule) Until(m LastMove) time.Time { return m.At.Add(r.Wait(m)) }

// Landing is where a move's replacement went.
type Landing string

const (
	// LandedPending means no replacement is bound yet.
	LandedPending Landing = "pending"
	// LandedAsPredicted is on the site the move was toward.
	LandedAsPredicted Landing = "as_predicted"
	// LandedBounced is back on the site the pod was moved from; the
	// scheduler disagrees with the prediction.
	LandedBounced Landing = "bounced"
	// LandedElsewhere is on a third site.
	LandedElsewhere Landing = "elsewhere"
)

// Landed judges where the replacement of the move m went: before are the
// UIDs of the workload's pods when the pod was evicted, pods the
// workload's pods now, and siteOf the site of a node. A new pod on m.From
// is a bounce, whatever else landed.
func Landed(m LastMove, before map[types.UID]bool, pods []*v1.Pod, siteOf func(node string) (string, bool)) Landing {
	out := LandedPending
	for _, p := range pods {
		if before[p.UID] || p.Spec.NodeName == "" || p.DeletionTimestamp != nil {
			continue
		}
		site, ok := siteOf(p.Spec.NodeName)
		switch {
		case !ok:
		case site == m.From:
			return LandedBounced
		case site == m.To:
			out = LandedAsPredicted
		case out == LandedPending:
			out = LandedElsewhere
		}
	}
	return out
}

// After returns the memory of m once its replacement landed: a bounce
// adds one to the bounces in a row, a replacement as predicted or
// elsewhere clears them.
func (m LastMove) After(l Landing) LastMove {
	switch l {
	case LandedBounced:
		m.Bounces++
	case LandedAsPredicted, LandedElsewhere:
		m.Bounces = 0
	}
	return m
}
