package sensor

import (
	"sync"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
)

// takeAll takes batches until the queue is closed and drained, returning
// the PIDs in the order taken.
func takeAll(q *queue) []uint32 {
	var got []uint32
	var batch []event.Event
	for {
		if batch = q.take(batch); batch == nil {
			return got
		}
		for _, e := range batch {
			got = append(got, e.PID)
		}
	}
}

// TestQueueOrder: two producers (the reader and the hold stage) and one
// consumer taking batches; every event comes out once, each producer's in
// the order it put them.
func TestQueueOrder(t *testing.T) {
	q := newQueue(64)
	const n = 100000
	var wg sync.WaitGroup
	for p := range 2 {
		wg.Go(func() {
			for i := range n {
				e := event.Event{PID: uint32(p*n + i)}
				if p == 0 {
					q.put(&e)
				} else {
					q.send(e)
				}
			}
		})
	}
	done := make(chan []uint32)
	go func() { done <- takeAll(q) }()
	wg.Wait()
	q.close()
	got := <-done
	if len(got) != 2*n {
		t.Fatalf("took %d events, put %d", len(got), 2*n)
	}
	next := [2]uint32{0, n}
	for i, pid := range got {
		p := pid / n
		if pid != next[p] {
			t.Fatalf("event %d: pid %d, want %d next from producer %d", i, pid, next[p], p)
		}
		next[p]++
	}
	if q.late.Load() != 0 {
		t.Fatalf("%d late puts counted, none was late", q.late.Load())
	}
}

// TestQueueBound: a full queue makes put wait, counted once per wait, and
// a take lets it go on.
func TestQueueBound(t *testing.T) {
	q := newQueue(4)
	for i := range 4 {
		q.put(&event.Event{PID: uint32(i)})
	}
	if n := q.stalls.Load(); n != 0 {
		t.Fatalf("%d stalls below the bound", n)
	}
	put := make(chan struct{})
	go func() {
		q.put(&event.Event{PID: 4})
		close(put)
	}()
	select {
	case <-put:
		t.Fatal("put past the bound did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	for q.stalls.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	b := q.take(nil)
	if len(b) != 4 || b[0].PID != 0 || b[3].PID != 3 {
		t.Fatalf("first batch %+v", b)
	}
	<-put
	b = q.take(b)
	if len(b) != 1 || b[0].PID != 4 {
		t.Fatalf("second batch %+v", b)
	}
	if n := q.stalls.Load(); n != 1 {
		t.Fatalf("%d stalls counted, want 1", n)
	}
}

// TestQueueCloseDrains: after close, take returns what is queued, then
// nil; a put after close is counted, not queued; a put waiting on a full
// queue when it closes is counted too.
func TestQueueCloseDrains(t *testing.T) {
	q := newQueue(3)
	for i := range 3 {
		q.put(&event.Event{PID: uint32(i)})
	}
	waiting := make(chan struct{})
	go func() {
		q.put(&event.Event{PID: 99}) // waits: full
		close(waiting)
	}()
	for q.stalls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	q.close()
	<-waiting
	q.send(event.Event{PID: 100})
	got := takeAll(q)
	if len(got) != 3 || got[0] != 0 || got[2] != 2 {
		t.Fatalf("drained %v, want [0 1 2]", got)
	}
	if n := q.late.Load(); n != 2 {
		t.Fatalf("%d late puts counted, want 2", n)
	}
	if q.take(nil) != nil {
		t.Fatal("take after the drain returned events")
	}
}

// TestQueueReusesBatches: a batch handed back is filled again, so a busy
// queue allocates no batch per take.
func TestQueueReusesBatches(t *testing.T) {
	q := newQueue(16)
	var batch []event.Event
	allocs := testing.AllocsPerRun(100, func() {
		for i := range 8 {
			q.put(&event.Event{PID: uint32(i)})
		}
		batch = q.take(batch)
		if len(batch) != 8 {
			t.Fatalf("batch of %d", len(batch))
		}
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per put and take of 8 events", allocs)
	}
}
