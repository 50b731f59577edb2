package sensor

import (
	"sync"
	"sync/atomic"

	"github.com/ringfence/ringfence/sensor/event"
)

// queue hands events from the ring reader (and the hold stage, which lets
// parked events go) to the sinks' goroutine, in order, in batches: the
// reader appends to the batch being filled and the sinks' goroutine takes
// all of it at once whenever it is ready for more, so that a busy pipeline
// pays one hand-off per batch, not per event, and an idle one passes each
// event on at once. Batches are reused, so events are copied into them,
// never allocated one by one.
//
// It is bounded: past its bound the reader waits for the sinks (counted as
// a stall), leaving records in the kernel ring, which counts what it
// cannot hold. Nothing is dropped here.
type queue struct {
	max int

	mu      sync.Mutex
	more    sync.Cond // signalled when an event is queued, or on close
	room    sync.Cond // broadcast when a batch is taken, or on close
	filling []event.Event
	spare   []event.Event // the last batch taken, emptied: the next to fill
	closed  bool

	stalls atomic.Uint64
	// late counts events put after close: none should be, but a late one
	// is counted, never silently gone.
	late atomic.Uint64
}

func newQueue(max int) *queue {
	q := &queue{max: max}
	q.more.L, q.room.L = &q.mu, &q.mu
	return q
}

// put queues a copy of e, waiting while the queue is full.
func (q *queue) put(e *event.Event) {
	q.mu.Lock()
	stalled := false
	for len(q.filling) >= q.max && !q.closed {
		if !stalled {
			q.stalls.Add(1)
			stalled = true
		}
		q.room.Wait()
	}
	if q.closed {
		q.mu.Unlock()
		q.late.Add(1)
		return
	}
	q.filling = append(q.filling, *e)
	q.mu.Unlock()
	q.more.Signal()
}

// send queues e, for the hold stage's Deliver.
func (q *queue) send(e event.Event) { q.put(&e) }

// take returns every event queued, oldest first, waiting while there is
// none; done is the batch the previous take returned, handed back for
// reuse. After close it returns what is left, then nil.
func (q *queue) take(done []event.Event) []event.Event {
	clear(done) // let go of the events' strings
	q.mu.Lock()
	defer q.mu.Unlock()
	if cap(done) > cap(q.spare) {
		q.spare = done[:0]
	}
	for len(q.filling) == 0 && !q.closed {
		q.more.Wait()
	}
	batch := q.filling
	q.filling, q.spare = q.spare[:0], nil
	q.room.Broadcast()
	if len(batch) == 0 {
		return nil
	}
	return batch
}

// empty reports whether nothing waits to be taken.
func (q *queue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.filling) == 0
}

// close makes take return nil once the queue is drained.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.more.Broadcast()
	q.room.Broadcast()
}
