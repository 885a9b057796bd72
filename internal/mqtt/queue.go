package mqtt

import (
	"context"
	"sync"
)

// message is one queued publish.
type message struct {
	seq     uint64
	topic   string
	payload []byte
}

// queue is a bounded FIFO: pushing onto a full queue drops the oldest message.
type queue struct {
	mu     sync.Mutex
	items  []message // items[head:] in order; compacted when half empty
	head   int
	limit  int
	seq    uint64
	notify chan struct{} // signalled (non-blocking) on every push
	empty  chan struct{} // closed and replaced whenever the queue becomes empty
}

func newQueue(limit int) *queue {
	q := &queue{limit: limit, notify: make(chan struct{}, 1), empty: make(chan struct{})}
	close(q.empty)
	return q
}

// push appends a message and reports whether an older one was dropped.
func (q *queue) push(topic string, payload []byte) (dropped bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.lenLocked() == 0 {
		q.empty = make(chan struct{})
	}
	if q.lenLocked() >= q.limit {
		q.items[q.head] = message{}
		q.head++
		dropped = true
	}
	q.seq++
	q.items = append(q.items, message{seq: q.seq, topic: topic, payload: payload})
	if q.head > len(q.items)/2 {
		q.items = append(q.items[:0:0], q.items[q.head:]...)
		q.head = 0
	}
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return dropped
}

func (q *queue) lenLocked() int { return len(q.items) - q.head }

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.lenLocked()
}

// peek waits for the oldest message without removing it.
func (q *queue) peek(ctx context.Context) (message, error) {
	for {
		q.mu.Lock()
		if q.lenLocked() > 0 {
			m := q.items[q.head]
			q.mu.Unlock()
			return m, nil
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return message{}, ctx.Err()
		case <-q.notify:
		}
	}
}

// remove drops the oldest message if it is still the one with seq (it may
// have been dropped for overflow while it was being published).
func (q *queue) remove(seq uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.lenLocked() > 0 && q.items[q.head].seq == seq {
		q.items[q.head] = message{}
		q.head++
		if q.lenLocked() == 0 {
			q.items, q.head = q.items[:0], 0
			close(q.empty)
		}
	}
}

// emptied returns a channel closed once the queue is empty.
func (q *queue) emptied() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.empty
}
