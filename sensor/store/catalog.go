package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// The catalog (file "catalog") summarises the sealed segments, so that a
// query skips the segments that cannot hold its container or its window
// without opening their indexes. It is a cache: the writer rewrites it
// whenever the set of sealed segments changes and removes it first thing
// when it opens the store; a reader reads the index of any segment it does
// not list. Since a sealed segment never changes, what it says of a
// segment stays true while that segment exists.
//
//	magic
//	u32 containers, each five strings
//	u32 segments, each: first sequence u64, min time i64, max time i64,
//	    records u32, loss reports u32, u32 symbols, each a container's
//	    position in the list above (symbol order)
//	u32 CRC-32C of everything before
const (
	catalogName  = "catalog"
	catalogMagic = "RFCAT001"
)

// summary is what a query needs to know of a segment before reading its
// index: its time range, its containers (by symbol), its loss reports.
type summary struct {
	minTime, maxTime int64
	events, losses   int
	// syms are the containers by symbol; or, in a summary from the
	// catalog, ids are their positions in dict, the catalog's list, which
	// all its segments share.
	syms []container
	ids  []uint32
	dict []container
}

// nsyms returns the number of containers (symbols) of the segment.
func (s *summary) nsyms() int {
	if s.ids != nil {
		return len(s.ids)
	}
	return len(s.syms)
}

// container returns the container of symbol i.
func (s *summary) container(i uint32) *container {
	if s.ids != nil {
		return &s.dict[s.ids[i]]
	}
	return &s.syms[i]
}

func summarise(x *segIndex) summary {
	return summary{minTime: x.MinTime, maxTime: x.MaxTime, events: x.count(), losses: len(x.loss), syms: x.Syms}
}

func (d *diskIndex) summary() (summary, error) {
	syms, err := d.symbols()
	return summary{minTime: d.minTime, maxTime: d.maxTime, events: d.events, losses: len(d.lossTab) / entrySize, syms: syms}, err
}

// marshalCatalog encodes the summaries of sealed segments.
func marshalCatalog(sealed []sealedInfo) []byte {
	dict := make(map[container]uint32)
	var names []byte
	n := uint32(0)
	for _, s := range sealed {
		for i := range uint32(s.sum.nsyms()) {
			c := *s.sum.container(i)
			if _, ok := dict[c]; !ok {
				dict[c] = n
				n++
				for _, f := range c.strings() {
					names = appendString(names, *f)
				}
			}
		}
	}
	b := append([]byte(catalogMagic), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(b[len(catalogMagic):], n)
	b = append(b, names...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(sealed)))
	for _, s := range sealed {
		b = binary.LittleEndian.AppendUint64(b, s.seg.First)
		b = binary.LittleEndian.AppendUint64(b, uint64(s.sum.minTime))
		b = binary.LittleEndian.AppendUint64(b, uint64(s.sum.maxTime))
		b = binary.LittleEndian.AppendUint32(b, uint32(s.sum.events))
		b = binary.LittleEndian.AppendUint32(b, uint32(s.sum.losses))
		b = binary.LittleEndian.AppendUint32(b, uint32(s.sum.nsyms()))
		for i := range uint32(s.sum.nsyms()) {
			b = binary.LittleEndian.AppendUint32(b, dict[*s.sum.container(i)])
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// parseCatalog decodes a catalog into summaries by first sequence. A
// damaged catalog, or one of another format, is an error: the caller
// reads indexes instead.
func parseCatalog(b []byte) (map[uint64]*summary, error) {
	if len(b) < len(catalogMagic)+4 || string(b[:len(catalogMagic)]) != catalogMagic {
		return nil, fmt.Errorf("catalog: not format %s", catalogMagic)
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(body):]) {
		return nil, fmt.Errorf("catalog: checksum")
	}
	r := reader{b: body[len(catalogMagic):]}
	dict := make([]container, min(int(r.u32()), len(r.b)/10))
	for i := range dict {
		for _, f := range dict[i].strings() {
			*f = r.str()
		}
	}
	out := make(map[uint64]*summary)
	for range r.u32() {
		first := r.u64()
		s := &summary{minTime: int64(r.u64()), maxTime: int64(r.u64()), events: int(r.u32()), losses: int(r.u32())}
		nsyms := int(r.u32())
		if r.err || nsyms > len(r.b)/4 {
			return nil, fmt.Errorf("catalog: truncated")
		}
		s.ids, s.dict = make([]uint32, nsyms), dict
		for i := range s.ids {
			if s.ids[i] = r.u32(); int(s.ids[i]) >= len(dict) {
				return nil, fmt.Errorf("catalog: container %d of %d", s.ids[i], len(dict))
			}
		}
		out[first] = s
	}
	if r.err || len(r.b) != 0 {
		return nil, fmt.Errorf("catalog: truncated")
	}
	return out, nil
}

// readCatalog returns the store's catalog, or nil when there is none or it
// cannot be trusted.
func readCatalog(dir string) map[uint64]*summary {
	b, err := os.ReadFile(filepath.Join(dir, catalogName))
	if err != nil {
		return nil
	}
	cat, err := parseCatalog(b)
	if err != nil {
		return nil
	}
	return cat
}

// writeCatalog replaces the catalog atomically.
func writeCatalog(dir string, sealed []sealedInfo) error {
	path := filepath.Join(dir, catalogName)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(marshalCatalog(sealed))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write catalog: %w", err)
	}
	return os.Rename(tmp, path)
}
