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
}

func newSegIndex() *segIndex {
	return &segIndex{MinTime: 1<<63 - 1, MaxTime: -1 << 63, Syms: []container{{}}, symOf: map[container]uint32{{}: 0}}
}

// add records one record's metadata.
func (x *segIndex) add(m meta, off int64) {
	sym, ok := x.symOf[m.Container]
	if !ok {
		sym = uint32(len(x.Syms))
		x.Syms = append(x.Syms, m.Container)
		x.symOf[m.Container] = sym
	}
	x.Entries = append(x.Entries, entry{Time: m.Time, Off: off, Sym: sym, Kind: m.Kind, Verdict: m.Verdict})
	x.MinTime = min(x.MinTime, m.Time)
	x.MaxTime = max(x.MaxTime, m.Time)
}

// seal sorts the entries by (symbol, time) and computes the symbol runs.
func (x *segIndex) seal() {
	slices.SortStableFunc(x.Entries, func(a, b entry) int {
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
	})
	x.symStart = make([]int, len(x.Syms)+1)
	for s := range x.Syms {
		x.symStart[s] = sort.Search(len(x.Entries), func(i int) bool { return x.Entries[i].Sym >= uint32(s) })
	}
	x.symStart[len(x.Syms)] = len(x.Entries)
}

// window returns the entries of symbol s with since <= time < until.
func (x *segIndex) window(s uint32, since, until int64) []entry {
	run := x.Entries[x.symStart[s]:x.symStart[s+1]]
	lo := sort.Search(len(run), func(i int) bool { return run[i].Time >= since })
	hi := sort.Search(len(run), func(i int) bool { return run[i].Time >= until })
	return run[lo:hi]
}

const idxMagic = "RFIDX001"

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
	n := r.u64()
	if r.err || n*entrySize != uint64(len(r.b)) {
		return nil, errBadIndex
	}
	x.Entries = make([]entry, n)
	for i := range x.Entries {
		e := &x.Entries[i]
		e.Time, e.Off, e.Sym = int64(r.u64()), int64(r.u64()), r.u32()
		e.Kind, e.Verdict = r.b[0], r.b[1]
		r.b = r.b[4:]
	}
	for _, e := range x.Entries {
		if int(e.Sym) >= nsyms {
			return nil, errBadIndex
		}
	}
	x.seal()
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
