package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf/ringbuf"
)

// Ring reads raw records from the event ring buffer.
type Ring struct {
	r *ringbuf.Reader
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
	defer r.r.Close()
	var rec ringbuf.Record
	for {
		if err := r.r.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrFlushed) || errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read event ring: %w", err)
		}
		fn(rec.RawSample)
	}
}
