package placement

import (
	"context"
	"fmt"
)

// halt lets a long solve stop soon after its context ends, at a cost its hot
// loops cannot measure: they report the work they do (in inner-loop steps of a
// few nanoseconds), and only every haltEvery steps is the context looked at.
// Once it has ended, every later report says stop at once. A nil *halt never
// stops (Cost, which callers use to judge a placement, runs to the end).
type halt struct {
	ctx  context.Context
	left int
	done bool
}

// haltEvery is the work between two looks at the context: some tens of
// microseconds, so a cancelled solve returns within a millisecond or so.
const haltEvery = 1 << 14

func newHalt(ctx context.Context) *halt {
	return &halt{ctx: ctx, left: haltEvery, done: ctx.Err() != nil}
}

// spend counts units of work and reports whether the solve must stop.
func (h *halt) spend(units int) bool {
	if h == nil {
		return false
	}
	if h.left -= units; h.left <= 0 && !h.done {
		h.left = haltEvery
		h.done = h.ctx.Err() != nil
	}
	return h.done
}

// stopped reports whether the solve must stop, without counting work.
func (h *halt) stopped() bool { return h != nil && h.done }

// err is why the solve stopped, wrapped as what: the context's error, with
// its cause when that says more (the signal that ended a command). It is
// nil when the solve did not stop.
func (h *halt) err(what string) error {
	if !h.stopped() {
		return nil
	}
	err := h.ctx.Err()
	if cause := context.Cause(h.ctx); cause != nil && cause.Error() != err.Error() {
		return fmt.Errorf("%s: %w (%w)", what, err, cause)
	}
	return fmt.Errorf("%s: %w", what, err)
}
