package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
)

// A live file (seg-*.live) indexes the segment being written, so that a
// reader need not scan its log: after each batch is written and synced to
// the log, the writer appends one block to it. It is not synced itself,
// and it always trails the log: a reader indexes what follows its last
// entry from the log, and after a crash the writer rebuilds it from the
// log. It is removed once the segment's index file is written.
//
//	magic
//	blocks: u32 body length, body, u32 CRC-32C of the body
//	body: u32 new symbols, their containers (five strings each),
//	      u32 entries, 20 bytes each: time i64, log offset u32,
//	      symbol u32, kind u8, verdict u8, loss report u8, zero u8
const (
	liveMagic     = "RFLIVE03"
	liveEntrySize = 20
	// liveBlockSize is a block's size besides its symbols and entries.
	liveBlockSize = 16
)

// placed is one record as written: its symbol, indexed fields and offset.
type placed struct {
	sym uint32
	m   *meta
	off int64
}

// appendLiveBlock appends the block of one batch: the symbols it added and
// its records.
func appendLiveBlock(buf []byte, newSyms []container, recs []placed) []byte {
	start := len(buf)
	buf = binary.LittleEndian.AppendUint32(buf, 0) // the length, below
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(newSyms)))
	for _, c := range newSyms {
		for _, s := range c.strings() {
			buf = appendString(buf, *s)
		}
	}
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(recs)))
	for _, r := range recs {
		buf = binary.LittleEndian.AppendUint64(buf, uint64(r.m.Time))
		buf = binary.LittleEndian.AppendUint32(buf, uint32(r.off))
		buf = binary.LittleEndian.AppendUint32(buf, r.sym)
		loss := uint8(0)
		if r.m.Loss {
			loss = 1
		}
		buf = append(buf, r.m.Kind, r.m.Verdict, loss, 0)
	}
	body := buf[start+4:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(body)))
	return binary.LittleEndian.AppendUint32(buf, crc32.Checksum(body, castagnoli))
}

// parseLive indexes the entries of a live file up to its first torn or
// damaged block, keeping the runs of only the containers keep selects (nil
// keeps all): the file lists every record of the segment, and a query
// needs a few. The index's range, count and loss reports are whole. It
// returns nil for a file that is not a live file.
func parseLive(b []byte, keep func(container) bool) *segIndex {
	if len(b) < len(liveMagic) || string(b[:len(liveMagic)]) != liveMagic {
		return nil
	}
	l := liveIndex{x: newSegIndex(), keep: keep}
	l.kept = append(l.kept, keep == nil || keep(container{}))
	b = b[len(liveMagic):]
	for len(b) >= 8 {
		n := int64(binary.LittleEndian.Uint32(b))
		if n > int64(len(b))-8 {
			break
		}
		body := b[4 : 4+n]
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[4+n:]) || !l.addBody(body) {
			break
		}
		b = b[8+n:]
	}
	return l.x
}

// liveIndex builds an index from a live file.
type liveIndex struct {
	x    *segIndex
	keep func(container) bool
	kept []bool // by symbol
}

// addBody indexes one block's body, or reports it inconsistent.
func (l *liveIndex) addBody(body []byte) bool {
	r := reader{b: body}
	for range r.u32() {
		var c container
		for _, f := range c.strings() {
			*f = r.str()
		}
		if r.err {
			return false
		}
		l.x.addSymbol(c)
		l.kept = append(l.kept, l.keep == nil || l.keep(c))
	}
	n := int(r.u32())
	entries := r.take(n * liveEntrySize)
	if r.err {
		return false
	}
	x := l.x
	for i := 0; i < n; i++ {
		e := entries[i*liveEntrySize : (i+1)*liveEntrySize]
		s := binary.LittleEndian.Uint32(e[12:])
		if int(s) >= len(l.kept) {
			return false
		}
		t := int64(binary.LittleEndian.Uint64(e))
		if !l.kept[s] && e[18] == 0 {
			// Most entries: only counted. This loop is most of what a
			// query of one container costs in the segment being written.
			x.n++
			x.MinTime, x.MaxTime = min(x.MinTime, t), max(x.MaxTime, t)
			continue
		}
		m := meta{Time: t, Kind: e[16], Verdict: e[17], Loss: e[18] == 1}
		off := int64(binary.LittleEndian.Uint32(e[8:]))
		if l.kept[s] {
			x.addAt(s, m, off)
		} else {
			x.note(m, off)
		}
	}
	if n > 0 { // entries are in write order: the last is the furthest
		x.lastOff = max(x.lastOff, int64(binary.LittleEndian.Uint32(entries[(n-1)*liveEntrySize+8:])))
	}
	return len(r.b) == 0
}

// liveFile is the writer's live file for the segment it fills.
type liveFile struct {
	f    *os.File
	size int64
	buf  []byte
}

// createLive starts the live file at path with the records of x (none for
// a new segment), replacing any file there.
func createLive(path string, x *segIndex) (*liveFile, error) {
	buf := append([]byte(nil), liveMagic...)
	if x.count() > 0 {
		buf = appendLiveBlock(buf, x.Syms[1:], x.placements())
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf, 0o600); err != nil {
		return nil, fmt.Errorf("live index: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("live index: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("live index: %w", err)
	}
	return &liveFile{f: f, size: int64(len(buf))}, nil
}

// placements lists every record of x, each with its symbol.
func (x *segIndex) placements() []placed {
	loss := make(map[uint32]bool, len(x.loss))
	for _, e := range x.loss {
		loss[e.Off] = true
	}
	var out []placed
	for s, run := range x.runs {
		for _, e := range run {
			m := &meta{Time: e.Time, Kind: e.Kind, Verdict: e.Verdict, Loss: loss[e.Off]}
			out = append(out, placed{sym: uint32(s), m: m, off: int64(e.Off)})
		}
	}
	return out
}

// append writes one batch's block. A live file that could not be written
// whole is removed: readers then scan the log, which holds everything.
func (l *liveFile) append(path string, newSyms []container, recs []placed) {
	if l.f == nil {
		return
	}
	l.buf = appendLiveBlock(l.buf[:0], newSyms, recs)
	if _, err := l.f.Write(l.buf); err != nil {
		l.remove(path)
		return
	}
	l.size += int64(len(l.buf))
}

// remove closes and deletes the live file.
func (l *liveFile) remove(path string) {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	os.Remove(path)
	l.size = 0
}
