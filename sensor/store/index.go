package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sort"
)

// entry locates one record. Sealed indexes keep entries sorted by
// (container symbol, time), so one container's window is one binary search.
type entry struct {
	Time    int64
	Off     int64
	Sym     uint32
	Kind    uint8
	Verdict uint8
	_       uint16
}

const entrySize = 24

// segIndex is the index of one segment.
type segIndex struct {
	MinTime, MaxTime int64
	// Syms are the distinct containers of the segment; symbol 0 is "none".
	Syms    []container
	Entries []entry
	// symStart[s] is the first entry of symbol s once sorted.
	symStart []int
	symOf    map[container]uint32
	// symBytes is what Syms take in the index file, for its size before it is written.
	symBytes int64
	// raw holds the sorted entries as stored, for an index read from disk:
	// only the entries a query needs are decoded.
	raw []byte
}

// count returns the number of entries.
func (x *segIndex) count() int {
	if x.raw != nil {
		return len(x.raw) / entrySize
	}
	return len(x.Entries)
}

// at returns entry i.
func (x *segIndex) at(i int) entry {
	if x.raw == nil {
		return x.Entries[i]
	}
	b := x.raw[i*entrySize : (i+1)*entrySize]
	return entry{
		Time: int64(binary.LittleEndian.Uint64(b)), Off: int64(binary.LittleEndian.Uint64(b[8:])),
		Sym: binary.LittleEndian.Uint32(b[16:]), Kind: b[20], Verdict: b[21],
	}
}

func newSegIndex() *segIndex {
	return &segIndex{MinTime: 1<<63 - 1, MaxTime: -1 << 63, Syms: []container{{}}, symOf: map[container]uint32{{}: 0}, symBytes: symSize(container{})}
}

// symSize is what one container takes in an index file: its five strings
// and its entry in the table of run starts.
func symSize(c container) int64 {
	n := int64(8)
	for _, s := range []string{c.ID, c.Name, c.Image, c.Pod, c.Namespace} {
		n += 2 + int64(min(len(s), 0xffff))
	}
	return n
}

// diskSize is the size of the index file this index seals into.
func (x *segIndex) diskSize() int64 {
	return int64(len(idxMagic)) + 16 + 4 + x.symBytes + 8 + 8 + int64(x.count())*entrySize + 4
}

// growth is how much adding a record of m grows the index file, and whether
// its container is new to the index; a container in pending is counted as
// already added.
func (x *segIndex) growth(m meta, pending map[container]bool) (int64, bool) {
	if _, ok := x.symOf[m.Container]; ok || pending[m.Container] {
		return entrySize, false
	}
	return entrySize + symSize(m.Container), true
}

// add records one record's metadata.
func (x *segIndex) add(m meta, off int64) {
	sym, ok := x.symOf[m.Container]
	if !ok {
		sym = uint32(len(x.Syms))
		x.Syms = append(x.Syms, m.Container)
		x.symOf[m.Container] = sym
		x.symBytes += symSize(m.Container)
	}
	x.Entries = append(x.Entries, entry{Time: m.Time, Off: off, Sym: sym, Kind: m.Kind, Verdict: m.Verdict})
	x.MinTime = min(x.MinTime, m.Time)
	x.MaxTime = max(x.MaxTime, m.Time)
}

func entryOrder(a, b entry) int {
	if a.Sym != b.Sym {
		return int(a.Sym) - int(b.Sym)
	}
	switch {
	case a.Time < b.Time:
		return -1
	case a.Time > b.Time:
		return 1
	}
	return 0
}

// seal sorts the entries by (symbol, time) and computes the symbol runs.
func (x *segIndex) seal() {
	slices.SortStableFunc(x.Entries, entryOrder)
	x.runs()
}

// runs computes where each symbol's entries start; the entries are sorted.
func (x *segIndex) runs() {
	x.symStart = make([]int, len(x.Syms)+1)
	for s := range x.Syms {
		x.symStart[s] = sort.Search(len(x.Entries), func(i int) bool { return x.Entries[i].Sym >= uint32(s) })
	}
	x.symStart[len(x.Syms)] = len(x.Entries)
}

// bounds returns the positions [lo, hi) of symbol s's entries with since <= time < until.
func (x *segIndex) bounds(s uint32, since, until int64) (lo, hi int) {
	start, end := x.symStart[s], x.symStart[s+1]
	lo = start + sort.Search(end-start, func(i int) bool { return x.at(start+i).Time >= since })
	hi = start + sort.Search(end-start, func(i int) bool { return x.at(start+i).Time >= until })
	return lo, hi
}

const idxMagic = "RFIDX002"

// marshal encodes a sealed index, with a trailing CRC over everything.
func (x *segIndex) marshal() []byte {
	var b []byte
	b = append(b, idxMagic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(x.MinTime))
	b = binary.LittleEndian.AppendUint64(b, uint64(x.MaxTime))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(x.Syms)))
	for _, c := range x.Syms {
		for _, s := range []string{c.ID, c.Name, c.Image, c.Pod, c.Namespace} {
			b = appendString(b, s)
		}
	}
	for _, st := range x.symStart {
		b = binary.LittleEndian.AppendUint64(b, uint64(st))
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(len(x.Entries)))
	for _, e := range x.Entries {
		b = binary.LittleEndian.AppendUint64(b, uint64(e.Time))
		b = binary.LittleEndian.AppendUint64(b, uint64(e.Off))
		b = binary.LittleEndian.AppendUint32(b, e.Sym)
		b = append(b, e.Kind, e.Verdict, 0, 0)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errBadIndex = errors.New("damaged index")

// readIndexHeader reads only the time range of an index, to skip segments
// outside a query's window without loading their entries.
func readIndexHeader(path string) (minTime, maxTime int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var b [len(idxMagic) + 16]byte
	if _, err := io.ReadFull(f, b[:]); err != nil || string(b[:len(idxMagic)]) != idxMagic {
		return 0, 0, errBadIndex
	}
	return int64(binary.LittleEndian.Uint64(b[len(idxMagic):])), int64(binary.LittleEndian.Uint64(b[len(idxMagic)+8:])), nil
}

func unmarshalIndex(b []byte) (*segIndex, error) {
	if len(b) < len(idxMagic)+4 || !bytes.Equal(b[:len(idxMagic)], []byte(idxMagic)) {
		return nil, errBadIndex
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, errBadIndex
	}
	r := reader{b: body[len(idxMagic):]}
	x := &segIndex{MinTime: int64(r.u64()), MaxTime: int64(r.u64())}
	nsyms := int(r.u32())
	if nsyms > len(r.b) {
		return nil, errBadIndex
	}
	x.Syms = make([]container, nsyms)
	for i := range x.Syms {
		c := &x.Syms[i]
		for _, f := range []*string{&c.ID, &c.Name, &c.Image, &c.Pod, &c.Namespace} {
			*f = r.str()
		}
	}
	x.symStart = make([]int, nsyms+1)
	for i := range x.symStart {
		x.symStart[i] = int(r.u64())
	}
	n := r.u64()
	if r.err || n*entrySize != uint64(len(r.b)) {
		return nil, errBadIndex
	}
	x.raw = r.b
	for i := 1; i <= nsyms; i++ {
		if x.symStart[i] < x.symStart[i-1] || x.symStart[i] > int(n) {
			return nil, errBadIndex
		}
	}
	if x.symStart[0] != 0 || x.symStart[nsyms] != int(n) {
		return nil, errBadIndex
	}
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

// reader decodes little-endian fields, remembering if it ran short.
type reader struct {
	b   []byte
	err bool
}

func (r *reader) take(n int) []byte {
	if len(r.b) < n {
		r.err = true
		r.b = nil
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u64() uint64 { return binary.LittleEndian.Uint64(r.take(8)) }
func (r *reader) u32() uint32 { return binary.LittleEndian.Uint32(r.take(4)) }
func (r *reader) str() string {
	n := binary.LittleEndian.Uint16(r.take(2))
	return string(r.take(int(n)))
}
