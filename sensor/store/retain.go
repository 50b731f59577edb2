package store

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Segment limits. A segment seals at defaultSegmentEvents events or at its
// byte limit: defaultSegmentBytes, or an eighth of Options.MaxBytes when that
// is smaller, but never below minSegmentBytes, which holds the largest record.
const (
	defaultSegmentBytes  = 64 << 20
	defaultSegmentEvents = 1 << 17
	minSegmentBytes      = 2 << 20
	// maxSegmentBytes keeps every offset in a segment within the u32 of an
	// index entry, with room for the one record that may pass the limit.
	maxSegmentBytes     = 1 << 31
	segmentsPerMaxBytes = 8
	// A quiet store's active segment is sealed once its oldest event is
	// MaxAge/ageSlices old, so that age retention can drop it.
	ageSlices = 8
)

// MinMaxBytes is the smallest size limit a store accepts with the default
// segment limits: room for one sealed segment beside the one being written.
const MinMaxBytes = 2 * minSegmentBytes

// Options bound the store. Zero values take the defaults.
type Options struct {
	// SegmentBytes and SegmentEvents seal the active segment when reached.
	// SegmentBytes counts the segment's log, its live index and the index
	// it will have, and may not pass 2 GiB.
	SegmentBytes  int64
	SegmentEvents int
	// MaxAge drops segments whose newest event is older; 0 keeps forever.
	MaxAge time.Duration
	// MaxBytes bounds the store on disk (logs, indexes and the live
	// index; not the catalog, a few bytes per segment); 0 means no limit.
	MaxBytes int64
	// Now is the clock used for retention; nil means time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	// Small enough that a reader's scan of the unsealed segment stays
	// within a query's budget, large enough that a day is a few hundred files;
	// and small enough that MaxBytes is met with whole segments.
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = defaultSegmentBytes
		if o.MaxBytes > 0 {
			o.SegmentBytes = min(o.SegmentBytes, max(o.MaxBytes/segmentsPerMaxBytes, minSegmentBytes))
		}
	}
	if o.SegmentEvents <= 0 {
		o.SegmentEvents = defaultSegmentEvents
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Check returns an error naming the field when the options cannot be
// honoured: a negative limit, or a MaxBytes too small to keep one sealed
// segment beside the one being written (below MinMaxBytes with the default
// segment size).
func (o Options) Check() error {
	switch {
	case o.MaxAge < 0:
		return fmt.Errorf("MaxAge %s is negative", o.MaxAge)
	case o.MaxBytes < 0:
		return fmt.Errorf("MaxBytes %d is negative", o.MaxBytes)
	case o.SegmentBytes > maxSegmentBytes:
		return fmt.Errorf("SegmentBytes %d is above %d, the most a segment may hold", o.SegmentBytes, int64(maxSegmentBytes))
	}
	o.defaults()
	if o.MaxBytes > 0 && o.MaxBytes < 2*o.SegmentBytes {
		return fmt.Errorf("MaxBytes %d cannot hold a sealed segment beside the one being written (%d bytes each): it must be at least %d",
			o.MaxBytes, o.SegmentBytes, 2*o.SegmentBytes)
	}
	return nil
}

// retain deletes the oldest sealed segments beyond the age and size limits.
// By size, it keeps the sealed segments plus room for the active one to
// fill (SegmentBytes) within MaxBytes, so the store stays within its limit
// until the next seal; since MaxBytes holds two segments, the newest sealed
// segment always stays.
func (w *Writer) retain() (removed int, err error) {
	var sealed int64
	for _, s := range w.sealed {
		sealed += s.bytes
	}
	reserve := max(w.cost(), w.opts.SegmentBytes)
	var cutoff int64 = -1 << 63
	if w.opts.MaxAge > 0 {
		cutoff = w.opts.Now().Add(-w.opts.MaxAge).UnixNano()
	}
	for len(w.sealed) > 0 {
		s := w.sealed[0]
		overSize := w.opts.MaxBytes > 0 && sealed+reserve > w.opts.MaxBytes
		if !overSize && s.sum.maxTime >= cutoff {
			break
		}
		// The index goes first, so a reader never finds an index without its log.
		if err := os.Remove(s.seg.Idx); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, err
		}
		if err := os.Remove(s.seg.Log); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, err
		}
		sealed -= s.bytes
		w.sealed = w.sealed[1:]
		removed++
	}
	return removed, nil
}

// expire applies retention between seals, for a store that fills slowly.
// Once the active segment's oldest event is an eighth of MaxAge old, the
// segment is sealed, so that on a quiet store events are still dropped
// within MaxAge and an eighth of it.
func (w *Writer) expire() error {
	if w.f == nil {
		return errors.New("store is closed")
	}
	if w.opts.MaxAge > 0 && w.index.count() > 0 &&
		w.index.MinTime < w.opts.Now().Add(-w.opts.MaxAge/ageSlices).UnixNano() {
		return w.rotate()
	}
	removed, err := w.retain()
	if removed > 0 {
		w.writeCatalog()
	}
	return err
}
