package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf/ringbuf"
)

// Ring reads raw records from the event ring buffer.
type Ring struct {
	r *ringbuf.Reader
	// started and done count the records handed to fn, and those for
	// which it has returned.
	started, done atomic.Uint64

	mu     sync.Mutex // closed and the reader's close, against Drained
	closed bool
}

// OpenRing opens a reader on the sensor's event ring.
func (s *Sensor) OpenRing() (*Ring, error) {
	r, err := ringbuf.NewReader(s.objs.Maps["events"])
	if err != nil {
		return nil, fmt.Errorf("open event ring: %w", err)
	}
	return &Ring{r: r}, nil
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
		r.r.Close()
	}()
	var rec ringbuf.Record
	for {
		if err := r.r.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrFlushed) || errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read event ring: %w", err)
		}
		r.started.Add(1)
		fn(rec.RawSample)
		r.done.Add(1)
	}
}

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
