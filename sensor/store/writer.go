package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
	live   *liveFile
	next   uint64 // sequence number of the next record
	sealed []sealedInfo

	// Reused between batches, so that writing allocates nothing per event.
	scratch batch
	placed  []placed
	newSyms []container
	pending map[container]uint32
}

type sealedInfo struct {
	seg   segment
	sum   summary
	bytes int64
}

// batch is events framed for the log, each with what its index entry
// needs. It is reused from batch to batch.
type batch struct {
	buf  []byte
	recs []framed
}

// framed is one event of a batch: its indexed fields, computed once, and
// the size of its record.
type framed struct {
	m    meta
	size int64
}

// add frames one event; an event that cannot be stored is refused alone.
func (b *batch) add(e *event.Event, line []byte) error {
	m := metaOf(e)
	start := len(b.buf)
	var err error
	if b.buf, err = appendRecord(b.buf, m, e.Counts, line); err != nil {
		return err
	}
	b.recs = append(b.recs, framed{m: m, size: int64(len(b.buf) - start)})
	return nil
}

func (b *batch) reset() {
	b.buf = b.buf[:0]
	clear(b.recs) // drop the events' strings
	b.recs = b.recs[:0]
}

// OpenWriter opens (creating if needed) the store at dir for appending. It
// cuts off a torn tail left by a crash, rebuilds missing, damaged or
// outdated indexes and the live index of the segment being written, and
// rewrites the catalog.
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
	w := &Writer{dir: dir, opts: opts, lock: lock, live: &liveFile{}}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	// No catalog may outlive the segments it describes: a segment started
	// below could reuse a deleted one's name.
	if err := os.Remove(filepath.Join(dir, catalogName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	if err := w.recover(); err != nil {
		return nil, err
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
	if _, err := w.retain(); err != nil {
		return nil, err
	}
	w.writeCatalog()
	return w, nil
}

// recover takes stock of the segments on disk: every sealed one is
// checked (its index rebuilt if need be), and the last one, unless a clean
// Close sealed it, becomes the active segment again.
func (w *Writer) recover() error {
	segs, err := listSegments(w.dir)
	if err != nil {
		return err
	}
	for i, seg := range segs {
		m, err := mapFile(seg.Log)
		if err != nil {
			return err
		}
		if i < len(segs)-1 || hasIndex(seg) {
			x, err := loadIndex(seg, m.data, true)
			m.close()
			if err != nil {
				return err
			}
			os.Remove(seg.Live) // left by a crash between sealing and its removal
			w.sealed = append(w.sealed, sealedInfo{seg: seg, sum: summarise(x), bytes: fileSize(seg.Log) + fileSize(seg.Idx)})
			w.next = seg.First + uint64(x.count())
			continue
		}
		x, n, end := scan(m.data)
		m.close()
		if err := w.resume(seg, x, n, end); err != nil {
			return err
		}
	}
	return nil
}

// hasIndex reports whether a segment has a whole index of this format.
func hasIndex(seg segment) bool {
	b, err := os.ReadFile(seg.Idx)
	if err != nil {
		return false
	}
	_, err = unmarshalIndex(b)
	return err == nil
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
	os.Remove(seg.Idx) // stale: the active segment has no index on disk
	live, err := createLive(seg.Live, x)
	if err != nil {
		f.Close()
		return err
	}
	w.seg, w.f, w.size, w.index, w.live, w.next = seg, f, end, x, live, seg.First+n
	return nil
}

func (w *Writer) startSegment(first uint64) error {
	seg := segmentAt(w.dir, first)
	f, err := os.OpenFile(seg.Log, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("new segment: %w", err)
	}
	x := newSegIndex()
	live, err := createLive(seg.Live, x)
	if err != nil {
		f.Close()
		return err
	}
	w.seg, w.f, w.size, w.index, w.live, w.next = seg, f, 0, x, live, first
	return syncDir(w.dir)
}

// Append writes events as one batch (one more where it fills a segment) and
// syncs it to disk. When it returns nil, the events survive a crash. An
// event that cannot be encoded fails the whole call, and nothing is written.
func (w *Writer) Append(events []event.Event) error {
	w.scratch.reset()
	for i := range events {
		line, err := events[i].MarshalLine()
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		if err := w.scratch.add(&events[i], line); err != nil {
			return err
		}
	}
	_, err := w.writeBatch(&w.scratch)
	return err
}

// writeBatch writes a batch in order and returns how many of its events
// are stored. The part that fits in the active segment is written with one
// write and one sync; the segment is sealed when full and the rest goes to
// the next one, so that no segment outgrows the limits retention counts on.
func (w *Writer) writeBatch(b *batch) (int, error) {
	if w.f == nil {
		return 0, errors.New("store is closed")
	}
	done, off := 0, int64(0)
	for done < len(b.recs) {
		n, size := w.fit(b.recs[done:])
		if n > 0 {
			if err := w.writeRecords(b.buf[off : off+size]); err != nil {
				return done, err
			}
		}
		done += n
		off += size
		if done < len(b.recs) || w.full() {
			if err := w.rotate(); err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

// fit places the leading records that fit in the active segment (at least
// one if it is empty): it resolves each one's symbol, once, into w.placed,
// lists the containers new to the segment in w.newSyms, and returns how many
// records fit and their bytes.
func (w *Writer) fit(recs []framed) (int, int64) {
	w.placed, w.newSyms = w.placed[:0], w.newSyms[:0]
	clear(w.pending)
	cost := w.cost() + liveBlockSize
	var size int64
	for i := range recs {
		r := &recs[i]
		if w.index.count()+i >= w.opts.SegmentEvents {
			break
		}
		sym, known := w.index.symbol(r.m.Container)
		if !known {
			sym, known = w.pending[r.m.Container]
		}
		grow := r.size + entrySize + liveEntrySize
		if r.m.Loss {
			grow += entrySize
		}
		if !known {
			sym = uint32(len(w.index.Syms) + len(w.newSyms))
			grow += runSize + 2*strSize(r.m.Container) // the index's and the live file's
		}
		if cost+grow > w.opts.SegmentBytes && (i > 0 || w.index.count() > 0) {
			break
		}
		if !known {
			if w.pending == nil {
				w.pending = make(map[container]uint32)
			}
			w.pending[r.m.Container] = sym
			w.newSyms = append(w.newSyms, r.m.Container)
		}
		cost += grow
		w.placed = append(w.placed, placed{sym: sym, m: &r.m, off: w.size + size})
		size += r.size
	}
	return len(w.placed), size
}

// writeRecords writes and syncs the records placed by fit, then indexes
// them, in memory and in the live file. A failed write is cut off, so that
// the log holds only whole, indexed records.
func (w *Writer) writeRecords(buf []byte) error {
	if _, err := w.f.WriteAt(buf, w.size); err != nil {
		w.f.Truncate(w.size)
		return fmt.Errorf("append to %s: %w", w.seg.Log, err)
	}
	if err := w.f.Sync(); err != nil {
		w.f.Truncate(w.size)
		return fmt.Errorf("sync %s: %w", w.seg.Log, err)
	}
	for _, c := range w.newSyms {
		w.index.addSymbol(c)
	}
	for _, p := range w.placed {
		w.index.addAt(p.sym, *p.m, p.off)
	}
	w.live.append(w.seg.Live, w.newSyms, w.placed)
	w.size += int64(len(buf))
	w.next += uint64(len(w.placed))
	return nil
}

// cost is what the active segment takes on disk: its log, its live file,
// and the index it will have once sealed.
func (w *Writer) cost() int64 { return w.size + w.live.size + w.index.diskSize() }

// full reports whether the active segment has reached a limit.
func (w *Writer) full() bool {
	return w.cost() >= w.opts.SegmentBytes || w.index.count() >= w.opts.SegmentEvents
}

// rotate seals the active segment (writes its index) and starts the next.
func (w *Writer) rotate() error {
	if err := w.seal(); err != nil {
		return err
	}
	if err := w.startSegment(w.next); err != nil {
		return err
	}
	_, err := w.retain()
	w.writeCatalog()
	return err
}

// seal writes the active segment's index, closes its log and removes its
// live file; the segment joins the sealed ones.
func (w *Writer) seal() error {
	bytes := w.size + w.index.diskSize()
	w.index.seal()
	if err := writeIndex(w.seg.Idx, w.index); err != nil {
		return err
	}
	if err := w.f.Close(); err != nil {
		return err
	}
	w.f = nil
	w.live.remove(w.seg.Live)
	w.sealed = append(w.sealed, sealedInfo{seg: w.seg, sum: summarise(w.index), bytes: bytes})
	return nil
}

// writeCatalog rewrites the catalog. Failing is harmless: a catalog that
// lacks segments only makes readers open their indexes, and OpenWriter
// removed any that could describe segments no longer there.
func (w *Writer) writeCatalog() {
	writeCatalog(w.dir, w.sealed)
}

// Stats describes the store's size.
type Stats struct {
	Segments int
	Bytes    int64  // segment logs and indexes on disk
	Events   uint64 // written since the store was created, including deleted ones
}

// Stats returns the current size.
func (w *Writer) Stats() Stats {
	st := Stats{Segments: len(w.sealed) + 1, Bytes: w.size + w.live.size, Events: w.next}
	for _, s := range w.sealed {
		st.Bytes += s.bytes
	}
	return st
}

// Close seals the active segment, so that readers need not index it, and
// closes the store. Closing twice is harmless.
func (w *Writer) Close() error {
	var errs []error
	if w.f != nil {
		if w.index.count() > 0 {
			if err := w.seal(); err != nil {
				errs = append(errs, err, w.f.Close()) // the next writer recovers the segment
			}
			w.writeCatalog()
		} else {
			errs = append(errs, w.f.Close(), os.Remove(w.seg.Log))
			w.live.remove(w.seg.Live)
		}
		w.f = nil
	}
	if w.lock != nil {
		errs = append(errs, w.lock.Close())
		w.lock = nil
	}
	return errors.Join(errs...)
}
