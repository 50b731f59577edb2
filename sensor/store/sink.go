package store

import (
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

// Sink feeds a Writer from the sensor's event path: writes are queued and
// batched, batches are synced at least every Interval, a full queue pushes
// back rather than drop, and every event that cannot be stored is counted.
type Sink struct {
	w      *Writer
	opts   SinkOptions
	queue  chan encoded
	done   chan struct{}
	closed sync.Once

	stalls      atomic.Uint64
	writeErrors atomic.Uint64
	mu          sync.Mutex
	stats       Stats
}

// NewSink starts the writing goroutine. Close stops it.
func NewSink(w *Writer, opts SinkOptions) *Sink {
	if opts.Queue <= 0 {
		opts.Queue = 16384
	}
	if opts.Interval <= 0 {
		opts.Interval = 250 * time.Millisecond
	}
	if opts.Batch <= 0 {
		opts.Batch = 4096
	}
	if opts.Retain <= 0 {
		opts.Retain = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Sink{w: w, opts: opts, queue: make(chan encoded, opts.Queue), done: make(chan struct{}), stats: w.Stats()}
	go s.run()
	return s
}

// Write queues the event (its line is copied), waiting for room when the
// queue is full.
func (s *Sink) Write(e *event.Event, line []byte) error {
	r := encoded{m: metaOf(e), line: append([]byte(nil), line...)}
	select {
	case s.queue <- r:
	default:
		s.stalls.Add(1)
		s.queue <- r
	}
	return nil
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
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Close writes what is queued, syncs, and closes the Writer.
func (s *Sink) Close() error {
	s.closed.Do(func() { close(s.queue) })
	<-s.done
	return s.w.Close()
}

func (s *Sink) run() {
	defer close(s.done)
	tick := time.NewTicker(s.opts.Interval)
	defer tick.Stop()
	retain := time.NewTicker(s.opts.Retain)
	defer retain.Stop()
	batch := make([]encoded, 0, s.opts.Batch)
	for {
		select {
		case e, ok := <-s.queue:
			if !ok {
				s.write(batch)
				return
			}
			batch = append(batch, e)
			if len(batch) < s.opts.Batch {
				continue
			}
		case <-tick.C:
		case <-retain.C:
			s.write(batch)
			batch = batch[:0]
			s.expire()
			continue
		}
		s.write(batch)
		batch = batch[:0]
	}
}

func (s *Sink) expire() {
	if err := s.w.expire(); err != nil {
		s.opts.Logger.Error("event store retention failed", "error", err)
	}
	s.mu.Lock()
	s.stats = s.w.Stats()
	s.mu.Unlock()
}

func (s *Sink) write(batch []encoded) {
	if len(batch) == 0 {
		return
	}
	if n, err := s.w.appendEncoded(batch); err != nil {
		s.writeErrors.Add(uint64(len(batch) - n))
		s.opts.Logger.Error("event store write failed", "events", len(batch)-n, "error", err)
	}
	s.mu.Lock()
	s.stats = s.w.Stats()
	s.mu.Unlock()
}
