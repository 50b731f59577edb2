package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// Ring reads raw records from the event ring buffer.
type Ring struct {
	r *ringbuf.Reader
	// started and done count the records handed to fn, and those for
	// which it has returned.
	started, done atomic.Uint64
	// backlogs counts the times the reader found the ring past
	// backlogHigh full: it had fallen behind the kernel. Every overflow of
	// the ring is preceded by one.
	backlogs atomic.Uint64
	// pressed is set while the ring is filling (see Pressed).
	pressed atomic.Bool

	mu     sync.Mutex // closed and the reader's close, against Drained
	closed bool
}

// OpenRing opens a reader on the sensor's event ring.
func (s *Sensor) OpenRing() (*Ring, error) {
	r, err := ringbuf.NewReader(s.maps.Events)
	if err != nil {
		return nil, fmt.Errorf("open event ring: %w", err)
	}
	return &Ring{r: r}, nil
}

// The ring counts as backlogged from three quarters full until it is below
// half full again, and as pressed from a quarter full until it is below an
// eighth full.
const (
	backlogHigh = 3
	backlogLow  = 2
	backlogOf   = 4

	pressHigh = 2
	pressLow  = 1
	pressOf   = 8
)

// filling tells whether a ring of size bytes, avail of them unread, is
// past high/of full, or still past low/of full when it was past high
// before (was): a state that does not flap at one mark.
func filling(avail, size int, was bool, high, low, of int) bool {
	if was {
		return avail*of >= size*low
	}
	return avail*of >= size*high
}

// Run hands every record to fn until ctx ends; then it hands over the
// records still pending in the ring, so a clean shutdown loses nothing that
// was already written. The record's bytes are only valid during the call.
// Run closes the reader.
func (r *Ring) Run(ctx context.Context, fn func([]byte)) error {
	stop := context.AfterFunc(ctx, func() { r.r.Flush() })
	defer stop()
	defer func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.closed = true
		r.pressed.Store(false) // nothing is read any more: nothing to yield to
		r.r.Close()
	}()
	var rec ringbuf.Record
	size := r.r.BufferSize()
	behind := false
	for {
		if err := r.r.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrFlushed) || errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read event ring: %w", err)
		}
		// A full ring can only follow a reader that found it past
		// backlogHigh: records are far smaller than a quarter of it.
		avail := r.r.AvailableBytes()
		if now := filling(avail, size, behind, backlogHigh, backlogLow, backlogOf); now != behind {
			behind = now
			if behind {
				r.backlogs.Add(1)
			}
		}
		if p := r.pressed.Load(); filling(avail, size, p, pressHigh, pressLow, pressOf) != p {
			r.pressed.Store(!p)
		}
		r.started.Add(1)
		fn(rec.RawSample)
		r.done.Add(1)
	}
}

// Drain hands every record the ring holds to fn, then closes the reader:
// for a ring nothing writes to any more.
func (r *Ring) Drain(fn func([]byte)) error {
	defer r.r.Close()
	r.r.SetDeadline(time.Now())
	var rec ringbuf.Record
	for {
		err := r.r.ReadInto(&rec)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("drain event ring: %w", err)
		}
		fn(rec.RawSample)
	}
}

// Pressed reports whether the ring is filling: found a quarter full, and
// not yet below an eighth full again. The reader or the stages after it
// are behind the kernel; what can yield to them should.
func (r *Ring) Pressed() bool { return r.pressed.Load() }

// Backlogs counts the times the reader found the ring three quarters full
// or more: the kernel produced faster than the reader took records, because
// the reader waited for the stages after it or was itself too slow.
func (r *Ring) Backlogs() uint64 { return r.backlogs.Load() }

// Drained reports whether every record the kernel had committed before the
// call has been handed to Run's fn, and fn has returned for it.
// Once Run has returned, nothing more will be handed over: it is drained.
func (r *Ring) Drained() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return true
	}
	d := r.done.Load()
	if r.started.Load() != d || r.r.AvailableBytes() != 0 {
		return false
	}
	// No record was handed over while the ring was looked at.
	return r.started.Load() == d
}
