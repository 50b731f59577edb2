package store

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
)

// Options bound the store. Zero values take the defaults.
type Options struct {
	// SegmentBytes and SegmentEvents seal the active segment when reached.
	SegmentBytes  int64
	SegmentEvents int
	// MaxAge drops segments whose newest event is older; 0 keeps forever.
	MaxAge time.Duration
	// MaxBytes drops the oldest segments while the store is larger; 0 means no limit.
	MaxBytes int64
	// Now is the clock used for retention; nil means time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	// Small enough that a reader's scan of the unsealed segment stays
	// within a query's budget, large enough that a day is a few hundred files.
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.SegmentEvents <= 0 {
		o.SegmentEvents = 1 << 17
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Writer appends events to a store directory. Only one process may write a
// store at a time; Writer is not safe for concurrent use.
type Writer struct {
	dir    string
	opts   Options
	lock   *os.File
	seg    segment
	f      *os.File
	size   int64
	index  *segIndex
	next   uint64 // sequence number of the next record
	buf    []byte
	sealed []sealedInfo
}

type sealedInfo struct {
	seg     segment
	maxTime int64
	bytes   int64
}

// OpenWriter opens (creating if needed) the store at dir for appending. It
// cuts off a torn tail left by a crash and rebuilds missing indexes.
func OpenWriter(dir string, opts Options) (_ *Writer, err error) {
	opts.defaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	w := &Writer{dir: dir, opts: opts, lock: lock}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	for i, seg := range segs {
		m, err := mapFile(seg.Log)
		if err != nil {
			return nil, err
		}
		sealed := i < len(segs)-1
		if !sealed {
			// A clean Close seals the last segment too.
			if b, err := os.ReadFile(seg.Idx); err == nil {
				if x, err := unmarshalIndex(b); err == nil {
					sealed = true
					w.next = seg.First + uint64(x.count())
				}
			}
		}
		if sealed {
			x, err := loadIndex(seg, m.data, true)
			st, _ := os.Stat(seg.Log)
			m.close()
			if err != nil {
				return nil, err
			}
			w.sealed = append(w.sealed, sealedInfo{seg: seg, maxTime: x.MaxTime, bytes: st.Size()})
			continue
		}
		// The last segment is the active one: recover it.
		x, n, end := scan(m.data)
		m.close()
		if err := w.resume(seg, x, n, end); err != nil {
			return nil, err
		}
	}
	if w.f == nil {
		if err := w.startSegment(w.next); err != nil {
			return nil, err
		}
	}
	return w, w.retain()
}

func (w *Writer) resume(seg segment, x *segIndex, n uint64, end int64) error {
	f, err := os.OpenFile(seg.Log, os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(end); err != nil { // drop a torn tail
		f.Close()
		return fmt.Errorf("truncate %s: %w", seg.Log, err)
	}
	if _, err := f.Seek(end, 0); err != nil {
		f.Close()
		return err
	}
	os.Remove(seg.Idx) // stale: the active segment has no index on disk
	w.seg, w.f, w.size, w.index, w.next = seg, f, end, x, seg.First+n
	return nil
}

func (w *Writer) startSegment(first uint64) error {
	seg := segmentAt(w.dir, first)
	f, err := os.OpenFile(seg.Log, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("new segment: %w", err)
	}
	w.seg, w.f, w.size, w.index, w.next = seg, f, 0, newSegIndex(), first
	return syncDir(w.dir)
}

// Append writes events as one batch and syncs it to disk. When it returns
// nil, the events survive a crash.
func (w *Writer) Append(events []event.Event) error {
	recs := make([]encoded, len(events))
	for i := range events {
		var err error
		if recs[i], err = encode(&events[i]); err != nil {
			return err
		}
	}
	return w.appendEncoded(recs)
}

func (w *Writer) appendEncoded(events []encoded) error {
	if w.f == nil {
		return errors.New("store is closed")
	}
	w.buf = w.buf[:0]
	offs := make([]int64, 0, len(events))
	for _, r := range events {
		offs = append(offs, w.size+int64(len(w.buf)))
		var err error
		if w.buf, err = appendRecord(w.buf, r); err != nil {
			return err
		}
	}
	if _, err := w.f.Write(w.buf); err != nil {
		return fmt.Errorf("append to %s: %w", w.seg.Log, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", w.seg.Log, err)
	}
	for i, r := range events {
		w.index.add(r.m, offs[i])
	}
	w.size += int64(len(w.buf))
	w.next += uint64(len(events))
	if w.size >= w.opts.SegmentBytes || len(w.index.Entries) >= w.opts.SegmentEvents {
		return w.rotate()
	}
	return nil
}

// rotate seals the active segment (writes its index) and starts the next.
func (w *Writer) rotate() error {
	w.index.seal()
	if err := writeIndex(w.seg.Idx, w.index); err != nil {
		return err
	}
	if err := w.f.Close(); err != nil {
		return err
	}
	w.sealed = append(w.sealed, sealedInfo{seg: w.seg, maxTime: w.index.MaxTime, bytes: w.size})
	if err := w.startSegment(w.next); err != nil {
		return err
	}
	return w.retain()
}

// retain deletes the oldest sealed segments beyond the age and size limits.
func (w *Writer) retain() error {
	total := w.size
	for _, s := range w.sealed {
		total += s.bytes
	}
	var cutoff int64 = -1 << 63
	if w.opts.MaxAge > 0 {
		cutoff = w.opts.Now().Add(-w.opts.MaxAge).UnixNano()
	}
	for len(w.sealed) > 0 {
		s := w.sealed[0]
		overSize := w.opts.MaxBytes > 0 && total > w.opts.MaxBytes
		if !overSize && s.maxTime >= cutoff {
			break
		}
		// The index goes first, so a reader never finds an index without its log.
		if err := os.Remove(s.seg.Idx); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.Remove(s.seg.Log); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		total -= s.bytes
		w.sealed = w.sealed[1:]
	}
	return nil
}

// Stats describes the store's size.
type Stats struct {
	Segments int
	Bytes    int64
	Events   uint64 // written since the store was created, including deleted ones
}

// Stats returns the current size.
func (w *Writer) Stats() Stats {
	st := Stats{Segments: len(w.sealed) + 1, Bytes: w.size, Events: w.next}
	for _, s := range w.sealed {
		st.Bytes += s.bytes
	}
	return st
}

// Close syncs the store, seals the active segment so that readers need not
// scan it, and closes the store. Closing twice is harmless.
func (w *Writer) Close() error {
	var errs []error
	if w.f != nil {
		errs = append(errs, w.f.Sync(), w.f.Close())
		w.f = nil
		if len(w.index.Entries) > 0 {
			w.index.seal()
			errs = append(errs, writeIndex(w.seg.Idx, w.index))
		} else {
			errs = append(errs, os.Remove(w.seg.Log))
		}
	}
	if w.lock != nil {
		errs = append(errs, w.lock.Close())
		w.lock = nil
	}
	return errors.Join(errs...)
}
