package rescheduler

import (
	"context"
	"fmt"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ning-edge/ning/internal/policy"
)

// The memory of moves outlives a leader in the Events the rescheduler
// records: an eviction's Event on the pod and a bounce's on the workload
// carry these annotations, and a new leader rebuilds its memory from them
// (restoreMoves) with one list of its own Events. It lasts as long as the
// apiserver keeps Events (--event-ttl, 1h by default).
const (
	annotationWorkload = "ning.io/workload-uid"
	annotationFrom     = "ning.io/move-from"
	annotationTo       = "ning.io/move-to"
	annotationAt       = "ning.io/move-at"
	annotationBounces  = "ning.io/move-bounces"
)

// ReasonMoveBounced is on a workload whose evicted pod's replacement the
// scheduler put back on the site it left.
const ReasonMoveBounced = "NingMoveBounced"

// eventSource is the component of the rescheduler's Events.
const eventSource = "ning-rescheduler"

// moveAnnotations encodes a workload's move for its Events.
func moveAnnotations(uid types.UID, m policy.LastMove) map[string]string {
	return map[string]string{
		annotationWorkload: string(uid),
		annotationFrom:     m.From,
		annotationTo:       m.To,
		annotationAt:       m.At.UTC().Format(time.RFC3339Nano),
		annotationBounces:  strconv.Itoa(m.Bounces),
	}
}

// parseMove decodes an Event's annotations; ok is false for an Event that
// carries none, err names what does not parse.
func parseMove(a map[string]string) (uid types.UID, m policy.LastMove, ok bool, err error) {
	u, has := a[annotationWorkload]
	if !has {
		return "", m, false, nil
	}
	if u == "" {
		return "", m, true, fmt.Errorf("%s is empty", annotationWorkload)
	}
	if m.At, err = time.Parse(time.RFC3339Nano, a[annotationAt]); err != nil {
		return "", m, true, fmt.Errorf("%s %q: %w", annotationAt, a[annotationAt], err)
	}
	if m.Bounces, err = strconv.Atoi(a[annotationBounces]); err != nil || m.Bounces < 0 {
		return "", m, true, fmt.Errorf("%s %q: want a count", annotationBounces, a[annotationBounces])
	}
	m.From, m.To = a[annotationFrom], a[annotationTo]
	return types.UID(u), m, true, nil
}

// restoreMoves rebuilds the mover's memory from the rescheduler's Events,
// for a new leader: the latest move of each workload, with the most bounces
// recorded for it. An Event whose annotations do not parse is skipped and
// counted (ning_rescheduler_decisions_total{decision="bad_move_event"}); a
// failed list leaves the memory empty, as before the Events existed.
func (r *Rescheduler) restoreMoves(ctx context.Context) {
	restored := map[types.UID]policy.LastMove{}
	opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("source", eventSource).String(), Limit: 500}
	for {
		list, err := r.client.CoreV1().Events(v1.NamespaceAll).List(ctx, opts)
		if err != nil {
			if ctx.Err() == nil {
				r.log.WarnContext(ctx, "listing the rescheduler's Events; this term starts without the memory of past moves", "err", err)
			}
			return
		}
		for i := range list.Items {
			uid, m, ok, err := parseMove(list.Items[i].Annotations)
			switch {
			case !ok:
				continue
			case err != nil:
				r.m.Decisions.WithLabelValues("bad_move_event").Inc()
				r.log.WarnContext(ctx, "an Event's move annotations do not parse; skipping it", "event", list.Items[i].Namespace+"/"+list.Items[i].Name, "err", err)
				continue
			}
			if old, seen := restored[uid]; !seen || m.At.After(old.At) || (m.At.Equal(old.At) && m.Bounces > old.Bounces) {
				restored[uid] = m
			}
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	if n := r.mover.restore(restored); n > 0 {
		r.log.InfoContext(ctx, "restored the memory of past moves from Events", "workloads", n)
	}
}

// restore takes the moves a past leader recorded, those still within their
// wait and its memory span, and returns how many. A move timed after now
// (the past leader's clock ran ahead) counts from now.
func (mv *mover) restore(moves map[types.UID]policy.LastMove) int {
	mv.mu.Lock()
	defer mv.mu.Unlock()
	rule, now := mv.cfg.moveRule(), mv.clock.Now()
	n := 0
	for uid, m := range moves {
		if m.At.After(now) {
			m.At = now
		}
		if have, ok := mv.moves[uid]; ok && !m.At.After(have.At) {
			continue
		}
		if now.Before(rule.Until(m).Add(mv.cfg.BounceBackoffMax)) {
			mv.moves[uid] = m
			n++
		}
	}
	return n
}
