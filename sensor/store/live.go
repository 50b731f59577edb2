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
// damaged block. It returns nil for a file that is not a live file.
func parseLive(b []byte) *segIndex {
	if len(b) < len(liveMagic) || string(b[:len(liveMagic)]) != liveMagic {
		return nil
	}
	x := newSegIndex()
	b = b[len(liveMagic):]
	for len(b) >= 8 {
		n := int64(binary.LittleEndian.Uint32(b))
		if n > int64(len(b))-8 {
			break
		}
		body := b[4 : 4+n]
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[4+n:]) || !x.addLiveBody(body) {
			break
		}
		b = b[8+n:]
	}
	return x
}

// addLiveBody indexes one block's body, or reports it inconsistent.
func (x *segIndex) addLiveBody(body []byte) bool {
	r := reader{b: body}
	for range r.u32() {
		var c container
		for _, f := range c.strings() {
			*f = r.str()
		}
		if r.err {
			return false
		}
		x.addSymbol(c)
	}
	for range r.u32() {
		e := r.take(liveEntrySize)
		s := binary.LittleEndian.Uint32(e[12:])
		if r.err || int(s) >= len(x.Syms) {
			return false
		}
		m := meta{Time: int64(binary.LittleEndian.Uint64(e)), Kind: e[16], Verdict: e[17], Loss: e[18] == 1}
		x.addAt(s, m, int64(binary.LittleEndian.Uint32(e[8:])))
	}
	return !r.err
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
