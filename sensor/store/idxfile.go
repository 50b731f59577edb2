package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
)

// An index file (seg-*.idx), little-endian:
//
//	header, 64 bytes: magic, min time i64, max time i64, records u32,
//	    symbols u32, loss reports u32, string bytes u32, head CRC u32, zeros
//	run table, 32 bytes a symbol: first entry u32, entries u32,
//	    min time i64, max time i64, CRC-32C of the run's entries u32, zero u32
//	strings: each symbol's container, five strings (u16 length, bytes)
//	loss list: an entry per loss report, in time order
//	entries, 16 bytes a record, by symbol then time:
//	    time i64, log offset u32, kind u8, verdict u8, zero u16
//
// Everything before the entries is the head: its size depends on the
// segment's containers, not on its records, and the head CRC covers it
// (all of it but the CRC itself). Each run has
// its own CRC, so a query checks exactly the part it reads.
const (
	idxMagic  = "RFIDX003"
	idxHeader = 64
	runSize   = 32
	entrySize = 16
)

var errBadIndex = errors.New("damaged index")

// marshal encodes a sealed index.
func (x *segIndex) marshal() []byte {
	b := make([]byte, x.diskSize())
	le := binary.LittleEndian
	copy(b, idxMagic)
	le.PutUint64(b[8:], uint64(x.MinTime))
	le.PutUint64(b[16:], uint64(x.MaxTime))
	le.PutUint32(b[24:], uint32(x.n))
	le.PutUint32(b[28:], uint32(len(x.Syms)))
	le.PutUint32(b[32:], uint32(len(x.loss)))
	le.PutUint32(b[36:], uint32(x.strBytes))
	runTab := b[idxHeader:]
	strAt := idxHeader + len(x.Syms)*runSize
	strs := b[strAt:strAt]
	for _, c := range x.Syms {
		for _, s := range c.strings() {
			strs = appendString(strs, *s)
		}
	}
	lossAt := strAt + len(strs)
	putEntries(b[lossAt:], x.loss)
	entries := b[lossAt+len(x.loss)*entrySize:]
	start := 0
	for s, r := range x.runs {
		enc := entries[start*entrySize : (start+len(r))*entrySize]
		putEntries(enc, r)
		lo, hi := x.runTimes(uint32(s))
		t := runTab[s*runSize:]
		le.PutUint32(t, uint32(start))
		le.PutUint32(t[4:], uint32(len(r)))
		le.PutUint64(t[8:], uint64(lo))
		le.PutUint64(t[16:], uint64(hi))
		le.PutUint32(t[24:], crc32.Checksum(enc, castagnoli))
		start += len(r)
	}
	le.PutUint32(b[40:], headCRC(b[:lossAt+len(x.loss)*entrySize]))
	return b
}

// headCRC is the CRC-32C of an index's head, less the four bytes that hold it.
func headCRC(head []byte) uint32 {
	return crc32.Update(crc32.Checksum(head[:40], castagnoli), castagnoli, head[44:])
}

// unmarshalIndex reads a whole index file, checking every part.
func unmarshalIndex(b []byte) (*segIndex, error) {
	d, err := parseIndex(b)
	if err != nil {
		return nil, err
	}
	return d.decode()
}

// putEntries encodes entries into b, which has room for them.
func putEntries(b []byte, entries []entry) {
	for i, e := range entries {
		p := b[i*entrySize:]
		binary.LittleEndian.PutUint64(p, uint64(e.Time))
		binary.LittleEndian.PutUint32(p[8:], e.Off)
		p[12], p[13], p[14], p[15] = e.Kind, e.Verdict, 0, 0
	}
}

func getEntries(b []byte) []entry {
	out := make([]entry, len(b)/entrySize)
	for i := range out {
		p := b[i*entrySize:]
		out[i] = entry{Time: int64(binary.LittleEndian.Uint64(p)), Off: binary.LittleEndian.Uint32(p[8:]), Kind: p[12], Verdict: p[13]}
	}
	return out
}

// diskIndex is a sealed index file as a query reads it: the head checked
// and kept, the runs read (and checked) one at a time.
type diskIndex struct {
	minTime, maxTime int64
	events           int
	runTab, strs     []byte
	lossTab, entries []byte
}

// parseIndex checks an index file's header, sizes and head CRC, without
// reading its entries. An index of another format is refused like a
// damaged one, saying which format it has: the writer rebuilds it, readers
// scan the log instead.
func parseIndex(b []byte) (*diskIndex, error) {
	if len(b) < idxHeader {
		return nil, fmt.Errorf("%w: %d bytes", errBadIndex, len(b))
	}
	if string(b[:len(idxMagic)]) != idxMagic {
		return nil, fmt.Errorf("%w: format %q, not %q", errBadIndex, b[:len(idxMagic)], idxMagic)
	}
	le := binary.LittleEndian
	d := &diskIndex{minTime: int64(le.Uint64(b[8:])), maxTime: int64(le.Uint64(b[16:])), events: int(le.Uint32(b[24:]))}
	nsyms, nloss, strBytes := int64(le.Uint32(b[28:])), int64(le.Uint32(b[32:])), int64(le.Uint32(b[36:]))
	headEnd := idxHeader + nsyms*runSize + strBytes + nloss*entrySize
	if nsyms == 0 || headEnd+int64(d.events)*entrySize != int64(len(b)) {
		return nil, fmt.Errorf("%w: sizes do not add up", errBadIndex)
	}
	if headCRC(b[:headEnd]) != le.Uint32(b[40:]) {
		return nil, fmt.Errorf("%w: head checksum", errBadIndex)
	}
	strAt := idxHeader + nsyms*runSize
	lossAt := strAt + strBytes
	d.runTab, d.strs = b[idxHeader:strAt], b[strAt:lossAt]
	d.lossTab, d.entries = b[lossAt:headEnd], b[headEnd:]
	next := 0
	for s := range int(nsyms) {
		start, n := d.run(uint32(s))
		if start != next {
			return nil, fmt.Errorf("%w: run table", errBadIndex)
		}
		next += n
	}
	if next != d.events {
		return nil, fmt.Errorf("%w: run table", errBadIndex)
	}
	return d, nil
}

func (d *diskIndex) run(s uint32) (start, n int) {
	t := d.runTab[s*runSize:]
	return int(binary.LittleEndian.Uint32(t)), int(binary.LittleEndian.Uint32(t[4:]))
}

func (d *diskIndex) timeRange() (int64, int64) { return d.minTime, d.maxTime }

func (d *diskIndex) runTimes(s uint32) (int64, int64) {
	t := d.runTab[s*runSize:]
	return int64(binary.LittleEndian.Uint64(t[8:])), int64(binary.LittleEndian.Uint64(t[16:]))
}

// runEntries reads symbol s's run, checking its CRC.
func (d *diskIndex) runEntries(s uint32) ([]entry, error) {
	start, n := d.run(s)
	b := d.entries[start*entrySize : (start+n)*entrySize]
	if crc32.Checksum(b, castagnoli) != binary.LittleEndian.Uint32(d.runTab[s*runSize+24:]) {
		return nil, fmt.Errorf("%w: run %d checksum", errBadIndex, s)
	}
	return getEntries(b), nil
}

func (d *diskIndex) lossEntries() ([]entry, error) { return getEntries(d.lossTab), nil }

// symbols decodes the containers of the segment.
func (d *diskIndex) symbols() ([]container, error) {
	syms := make([]container, len(d.runTab)/runSize)
	r := reader{b: d.strs}
	for i := range syms {
		for _, f := range syms[i].strings() {
			*f = r.str()
		}
	}
	if r.err || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: containers", errBadIndex)
	}
	return syms, nil
}

// decode reads the whole index into memory, checking every part: for the
// writer's recovery and for Verify.
func (d *diskIndex) decode() (*segIndex, error) {
	syms, err := d.symbols()
	if err != nil {
		return nil, err
	}
	x := emptyIndex()
	for s, c := range syms {
		x.addSymbol(c)
		run, err := d.runEntries(uint32(s))
		if err != nil {
			return nil, err
		}
		x.runs[s] = run
		x.n += len(run)
		for _, e := range run {
			x.lastOff = max(x.lastOff, int64(e.Off))
		}
	}
	x.loss, _ = d.lossEntries()
	x.MinTime, x.MaxTime = d.minTime, d.maxTime
	return x, nil
}

// writeIndex writes an index file atomically.
func writeIndex(path string, x *segIndex) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(x.marshal()); err != nil {
		f.Close()
		return fmt.Errorf("write index: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync index: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
