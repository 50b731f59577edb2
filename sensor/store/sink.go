package store

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
)

// SinkOptions tune the batching in front of a Writer.
type SinkOptions struct {
	// Queue bounds the events waiting to be written; past it, Write waits,
	// pushing back on the sensor (and, in the end, the kernel ring, which
	// counts what it cannot hold).
	Queue int
	// Interval is the longest an event waits before its batch is synced.
	Interval time.Duration
	// Batch is the most events written in one batch.
	Batch int
	// Retain is how often retention runs besides when a segment seals, so
	// that a quiet store still ages out.
	Retain time.Duration
	Logger *slog.Logger
}

// Sink feeds a Writer from the sensor's event path: writes are framed
// into batches, batches are synced at least every Interval, a full queue
// pushes back rather than drop, and every event that cannot be stored is
// counted.
//
// Write frames each event straight into the batch being filled (its
// record, checksum and index fields, once), so the writing goroutine only
// writes, syncs and indexes whole batches; batches are recycled, so the
// path allocates nothing per event.
type Sink struct {
	w    *Writer
	opts SinkOptions

	mu      sync.Mutex
	room    *sync.Cond // a queued batch was written
	filling *batch
	queued  []*batch // full batches waiting for the writer, oldest first
	free    []*batch
	closed  bool
	wake    chan struct{} // a batch was queued, or the sink closed
	done    chan struct{}
	once    sync.Once

	stalls      atomic.Uint64
	writeErrors atomic.Uint64
	statsMu     sync.Mutex
	stats       Stats
}

// NewSink starts the writing goroutine. Close stops it.
func NewSink(w *Writer, opts SinkOptions) *Sink {
	if opts.Batch <= 0 {
		opts.Batch = 4096
	}
	if opts.Queue <= 0 {
		opts.Queue = 4 * opts.Batch
	}
	if opts.Interval <= 0 {
		opts.Interval = 250 * time.Millisecond
	}
	if opts.Retain <= 0 {
		opts.Retain = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Sink{w: w, opts: opts, filling: &batch{}, wake: make(chan struct{}, 1), done: make(chan struct{}), stats: w.Stats()}
	s.room = sync.NewCond(&s.mu)
	go s.run()
	return s
}

// maxQueued is how many full batches may wait: the queue's bound.
func (s *Sink) maxQueued() int { return max(1, s.opts.Queue/s.opts.Batch) }

// Write frames the event into the batch being filled, waiting for room
// when the queue is full. An event too large for a record is counted as
// lost (store_write_error) and refused alone.
func (s *Sink) Write(e *event.Event, line []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	waited := false
	for len(s.filling.recs) >= s.opts.Batch && !s.closed {
		if len(s.queued) < s.maxQueued() {
			s.queue()
			continue
		}
		if !waited {
			s.stalls.Add(1)
			waited = true
		}
		s.room.Wait()
	}
	if s.closed {
		s.writeErrors.Add(1)
		return errors.New("store sink is closed")
	}
	if err := s.filling.add(e, line); err != nil {
		s.writeErrors.Add(1)
		return err
	}
	if len(s.filling.recs) >= s.opts.Batch && len(s.queued) < s.maxQueued() {
		s.queue()
	}
	return nil
}

// queue hands the filling batch to the writer; s.mu is held.
func (s *Sink) queue() {
	s.queued = append(s.queued, s.filling)
	s.filling = s.fresh()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// fresh returns an empty batch, a recycled one if there is; s.mu is held.
func (s *Sink) fresh() *batch {
	n := len(s.free)
	if n == 0 {
		return &batch{}
	}
	b := s.free[n-1]
	s.free = s.free[:n-1]
	return b
}

// Flush is a no-op: batches are synced on their own schedule.
func (s *Sink) Flush() error { return nil }

// Lost reports the events the store could not write.
func (s *Sink) Lost() map[string]uint64 {
	return map[string]uint64{"store_write_error": s.writeErrors.Load()}
}

// Stalls reports how often a writer waited for the store to catch up.
func (s *Sink) Stalls() map[string]uint64 {
	return map[string]uint64{"store_queue": s.stalls.Load()}
}

// Stats returns the store's size as of the last batch.
func (s *Sink) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// Close writes what is queued, syncs, and closes the Writer. Writes after
// Close are refused and counted as lost.
func (s *Sink) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.room.Broadcast()
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	})
	<-s.done
	return s.w.Close()
}

func (s *Sink) run() {
	defer close(s.done)
	tick := time.NewTicker(s.opts.Interval)
	defer tick.Stop()
	retain := time.NewTicker(s.opts.Retain)
	defer retain.Stop()
	for {
		partial, expire := false, false
		select {
		case <-s.wake:
		case <-tick.C:
			partial = true
		case <-retain.C:
			partial, expire = true, true
		}
		if !s.drain(partial) {
			return
		}
		if expire {
			s.expire()
		}
	}
}

// drain writes the queued batches, and with partial (or once closed) the
// batch being filled too, taken once, so that no event waits longer than
// an Interval. It returns false once the sink is closed and everything
// is written.
func (s *Sink) drain(partial bool) bool {
	for {
		s.mu.Lock()
		var b *batch
		switch {
		case len(s.queued) > 0:
			b = s.queued[0]
			s.queued = s.queued[1:]
		case (partial || s.closed) && len(s.filling.recs) > 0:
			b, s.filling = s.filling, s.fresh()
			partial = false
		}
		closed := s.closed
		s.mu.Unlock()
		if b == nil {
			return !closed
		}
		s.write(b)
		b.reset()
		s.mu.Lock()
		s.free = append(s.free, b)
		s.room.Broadcast()
		s.mu.Unlock()
	}
}

func (s *Sink) expire() {
	if err := s.w.expire(); err != nil {
		s.opts.Logger.Error("event store retention failed", "error", err)
	}
	s.statsMu.Lock()
	s.stats = s.w.Stats()
	s.statsMu.Unlock()
}

func (s *Sink) write(b *batch) {
	if n, err := s.w.writeBatch(b); err != nil {
		s.writeErrors.Add(uint64(len(b.recs) - n))
		s.opts.Logger.Error("event store write failed", "events", len(b.recs)-n, "error", err)
	}
	s.statsMu.Lock()
	s.stats = s.w.Stats()
	s.statsMu.Unlock()
}
