// Package netem emulates a WAN link between network namespaces for
// ning's end-to-end tests on kernels without sch_netem: a userspace delayer
// behind iptables' NFQUEUE target holds each packet for a one-way delay (plus
// jitter), drops a share of them (loss), and accepts the rest.
//
// Accuracy: the delayer adds about 0.1-0.5 ms per direction (the trip through
// userspace and Go timer latency); an RTT through two delayers measures about
// 0.8 ms above the configured figure.
package netem

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Shape is what one direction of a link does to each packet.
type Shape struct {
	// Delay is the one-way delay.
	Delay time.Duration
	// Jitter spreads each packet's delay uniformly over Delay ± Jitter.
	// Packets may be reordered, as on a real multipath WAN and as netem does.
	Jitter time.Duration
	// Loss is the share of packets dropped, 0..1.
	Loss float64
}

// Validate checks a shape.
func (s Shape) Validate() error {
	switch {
	case s.Delay < 0 || s.Jitter < 0:
		return fmt.Errorf("delay %s ± %s: want non-negative", s.Delay, s.Jitter)
	case s.Jitter > s.Delay:
		return fmt.Errorf("jitter %s is larger than the delay %s", s.Jitter, s.Delay)
	case !(s.Loss >= 0 && s.Loss <= 1):
		return fmt.Errorf("loss %v: want 0..1", s.Loss)
	}
	return nil
}

// Half returns the shape of one direction of a link with the given round-trip
// shape: half the delay and jitter each way, and a per-direction loss such
// that a round trip is lost with probability rtt.Loss.
func Half(rtt Shape) Shape {
	return Shape{Delay: rtt.Delay / 2, Jitter: rtt.Jitter / 2, Loss: 1 - math.Sqrt(1-rtt.Loss)}
}

// Decider makes the per-packet decision; it is the pure part of the delayer.
type Decider struct {
	shape Shape
	rng   *rand.Rand
}

// NewDecider returns a decider with its own random source seeded by seed.
func NewDecider(s Shape, seed uint64) *Decider {
	return &Decider{shape: s, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Decide returns whether a packet arriving now is dropped and, if not, when
// it is to be released.
func (d *Decider) Decide(now time.Time) (release time.Time, drop bool) {
	if d.shape.Loss > 0 && d.rng.Float64() < d.shape.Loss {
		return time.Time{}, true
	}
	delay := d.shape.Delay
	if j := d.shape.Jitter; j > 0 {
		delay += time.Duration(d.rng.Int64N(int64(2*j)+1)) - j
	}
	return now.Add(delay), false
}

// Delayer serves one NFQUEUE queue.
type Delayer struct {
	q       *queue
	decider *Decider
}

// NewDelayer binds queue num in the network namespace whose file descriptor
// is netns (0: this process's) and shapes its packets with s. Run serves it.
func NewDelayer(netns int, num uint16, s Shape, seed uint64) (*Delayer, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("queue %d: %w", num, err)
	}
	q, err := openQueue(netns, num, 8192)
	if err != nil {
		return nil, err
	}
	return &Delayer{q: q, decider: NewDecider(s, seed)}, nil
}

type held struct {
	id      uint32
	release time.Time
}

type heldHeap []held

func (h heldHeap) Len() int           { return len(h) }
func (h heldHeap) Less(i, j int) bool { return h[i].release.Before(h[j].release) }
func (h heldHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *heldHeap) Push(x any)        { *h = append(*h, x.(held)) }
func (h *heldHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Run holds and releases packets until ctx is done, then closes the queue
// (the kernel drops what it still holds). It returns nil on cancellation.
func (d *Delayer) Run(ctx context.Context) error {
	// Each batch carries the time it was read, so the hand-off to this
	// goroutine does not add to the delay.
	type batch struct {
		ids []uint32
		at  time.Time
	}
	arrivals := make(chan batch, 1024)
	recvErr := make(chan error, 1)
	go func() {
		for {
			ids, err := d.q.receive()
			at := time.Now()
			if err != nil {
				recvErr <- err
				close(arrivals)
				return
			}
			if len(ids) > 0 {
				arrivals <- batch{ids: ids, at: at}
			}
		}
	}()
	stop := func(err error) error {
		cerr := d.q.close()
		for b := range arrivals {
			_ = b // drained: the reader stops once it sees the closed socket
		}
		if err != nil {
			return err
		}
		return ignoreClosed(cerr)
	}

	var pending heldHeap
	take := func(b batch) error {
		for _, id := range b.ids {
			release, drop := d.decider.Decide(b.at)
			if drop {
				if err := d.q.verdict(id, false); err != nil {
					return err
				}
				continue
			}
			heap.Push(&pending, held{id: id, release: release})
		}
		return nil
	}
	// Releases are timed by a timerfd read through the netpoller: it fires
	// within microseconds, where a runtime timer in an idle Go process can
	// fire up to a millisecond late (epoll_wait's millisecond timeout).
	timer, err := newTimerFD()
	if err != nil {
		return stop(err)
	}
	defer func() { _ = timer.close() }()
	for {
		now := time.Now()
		for len(pending) > 0 && !pending[0].release.After(now) {
			h := heap.Pop(&pending).(held)
			if err := d.q.verdict(h.id, true); err != nil {
				return stop(err)
			}
		}
		if len(pending) > 0 {
			if err := timer.arm(time.Until(pending[0].release)); err != nil {
				return stop(err)
			}
		}
		select {
		case <-ctx.Done():
			return stop(nil)
		case b, ok := <-arrivals:
			if !ok {
				err := <-recvErr
				if ctx.Err() != nil {
					// Cancelled: the receiver's socket closing is the
					// shutdown, and select may pick this case first.
					return stop(nil)
				}
				return stop(fmt.Errorf("nfqueue %d: receiving: %w", d.q.num, err))
			}
			if err := take(b); err != nil {
				return stop(err)
			}
		case <-timer.fired:
		}
	}
}

// timerFD is a one-shot Linux timerfd whose expiries arrive on fired.
type timerFD struct {
	f     *os.File
	fd    int
	fired chan struct{}
}

func newTimerFD() (*timerFD, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	t := &timerFD{f: os.NewFile(uintptr(fd), "timerfd"), fd: fd, fired: make(chan struct{}, 1)}
	go func() {
		buf := make([]byte, 8)
		for {
			if _, err := t.f.Read(buf); err != nil {
				return // closed
			}
			select {
			case t.fired <- struct{}{}:
			default:
			}
		}
	}()
	return t, nil
}

// arm sets the timer to fire once after wait (at once if wait <= 0).
func (t *timerFD) arm(wait time.Duration) error {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(max(wait, time.Microsecond)))}
	if err := unix.TimerfdSettime(t.fd, 0, &spec, nil); err != nil {
		return fmt.Errorf("timerfd: %w", err)
	}
	return nil
}

func (t *timerFD) close() error { return t.f.Close() }

func ignoreClosed(err error) error {
	if err == nil || errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}
