package store

import (
	"errors"
	"fmt"
	"os"

	"github.com/ringfence/ringfence/sensor/event"
)

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
	if err := opts.Check(); err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
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
			w.sealed = append(w.sealed, sealedInfo{seg: seg, maxTime: x.MaxTime, bytes: st.Size() + fileSize(seg.Idx)})
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
	} else if w.index.count() > 0 && w.full() {
		// Written under larger segment limits: seal it, so that the limits hold from here.
		if err := w.rotate(); err != nil {
			return nil, err
		}
	}
	return w, w.retain()
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
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

// Append writes events as one batch (one more where it fills a segment) and
// syncs it to disk. When it returns nil, the events survive a crash.
func (w *Writer) Append(events []event.Event) error {
	recs := make([]encoded, len(events))
	for i := range events {
		var err error
		if recs[i], err = encode(&events[i]); err != nil {
			return err
		}
	}
	_, err := w.appendEncoded(recs)
	return err
}

// appendEncoded writes events in order and returns how many are stored. The
// part that fits in the active segment is written with one write and one
// sync; the segment is sealed when full and the rest goes to the next one,
// so that no segment outgrows the limits retention counts on.
func (w *Writer) appendEncoded(events []encoded) (int, error) {
	if w.f == nil {
		return 0, errors.New("store is closed")
	}
	done := 0
	for done < len(events) {
		n, err := w.writeChunk(events[done:])
		done += n
		if err != nil {
			return done, err
		}
		if done < len(events) || w.full() {
			if err := w.rotate(); err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

// writeChunk writes the leading events that fit in the active segment (at
// least one if it is empty) and returns how many it wrote.
func (w *Writer) writeChunk(events []encoded) (int, error) {
	w.buf = w.buf[:0]
	offs := make([]int64, 0, min(len(events), w.opts.SegmentEvents))
	cost := w.cost()
	var pending map[container]bool
	for _, r := range events {
		if w.index.count()+len(offs) >= w.opts.SegmentEvents {
			break
		}
		start := len(w.buf)
		var err error
		if w.buf, err = appendRecord(w.buf, r); err != nil {
			return 0, err
		}
		idxGrow, newSym := w.index.growth(r.m, pending)
		grow := int64(len(w.buf)-start) + idxGrow
		if cost+grow > w.opts.SegmentBytes && (len(offs) > 0 || w.index.count() > 0) {
			w.buf = w.buf[:start]
			break
		}
		if newSym {
			if pending == nil {
				pending = make(map[container]bool)
			}
			pending[r.m.Container] = true
		}
		cost += grow
		offs = append(offs, w.size+int64(start))
	}
	if len(offs) == 0 {
		return 0, nil
	}
	if _, err := w.f.Write(w.buf); err != nil {
		return 0, fmt.Errorf("append to %s: %w", w.seg.Log, err)
	}
	if err := w.f.Sync(); err != nil {
		return 0, fmt.Errorf("sync %s: %w", w.seg.Log, err)
	}
	for i, off := range offs {
		w.index.add(events[i].m, off)
	}
	w.size += int64(len(w.buf))
	w.next += uint64(len(offs))
	return len(offs), nil
}

// cost is what the active segment takes on disk once sealed: its log and its index.
func (w *Writer) cost() int64 { return w.size + w.index.diskSize() }

// full reports whether the active segment has reached a limit.
func (w *Writer) full() bool {
	return w.cost() >= w.opts.SegmentBytes || w.index.count() >= w.opts.SegmentEvents
}

// rotate seals the active segment (writes its index) and starts the next.
func (w *Writer) rotate() error {
	bytes := w.cost()
	w.index.seal()
	if err := writeIndex(w.seg.Idx, w.index); err != nil {
		return err
	}
	if err := w.f.Close(); err != nil {
		return err
	}
	w.sealed = append(w.sealed, sealedInfo{seg: w.seg, maxTime: w.index.MaxTime, bytes: bytes})
	if err := w.startSegment(w.next); err != nil {
		return err
	}
	return w.retain()
}

// Stats describes the store's size.
type Stats struct {
	Segments int
	Bytes    int64  // segment logs and indexes on disk
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
