package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// segment names one segment of a store directory.
type segment struct {
	First uint64 // sequence number of its first record, which names it
	Log   string
	Idx   string
	// Live indexes the segment while it is written (see live.go).
	Live string
}

func segmentAt(dir string, first uint64) segment {
	base := filepath.Join(dir, fmt.Sprintf("seg-%016x", first))
	return segment{First: first, Log: base + ".log", Idx: base + ".idx", Live: base + ".live"}
}

// listSegments returns the segments of dir in order.
func listSegments(dir string) ([]segment, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	segs := make([]segment, 0, len(names)/2)
	for _, n := range names {
		hex, ok := strings.CutPrefix(n, "seg-")
		if hex, ok = strings.CutSuffix(hex, ".log"); !ok || len(hex) != 16 {
			continue // not a log, or not ours
		}
		first, err := strconv.ParseUint(hex, 16, 64)
		if err != nil {
			continue
		}
		segs = append(segs, segmentAt(dir, first))
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].First < segs[j].First })
	return segs, nil
}

// mapped is a read-only memory map of a segment log (empty files map to nil).
type mapped struct {
	data []byte
}

func mapFile(path string) (*mapped, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return &mapped{}, nil
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return &mapped{data: data}, nil
}

func (m *mapped) close() error {
	if m == nil || m.data == nil {
		return nil
	}
	err := unix.Munmap(m.data)
	m.data = nil
	return err
}

// scan indexes the valid records of data and returns the index, the number
// of records and the offset where valid data ends.
func scan(data []byte) (*segIndex, uint64, int64) {
	x := newSegIndex()
	n, end := scanFrom(data, 0, x)
	return x, n, end
}

// scanFrom adds to x the valid records of data from off on, and returns
// how many it added and where valid data ends.
func scanFrom(data []byte, off int64, x *segIndex) (uint64, int64) {
	var n uint64
	for {
		payload, next, err := readFrame(data, off)
		if err != nil {
			return n, off
		}
		r, err := parsePayload(payload)
		if err != nil {
			return n, off
		}
		x.add(r.m, off)
		off = next
		n++
	}
}

// loadIndex reads a sealed segment's index whole, checking every part, and
// rebuilds it from the log when it is missing, damaged or of another
// format (a crash while sealing, or an older version). With repair, the
// rebuilt index is written.
func loadIndex(seg segment, data []byte, repair bool) (*segIndex, error) {
	b, err := os.ReadFile(seg.Idx)
	if err == nil {
		if x, err := unmarshalIndex(b); err == nil {
			return x, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	x, _, _ := scan(data)
	x.seal()
	if repair {
		if err := writeIndex(seg.Idx, x); err != nil {
			return nil, fmt.Errorf("rebuild index %s: %w", seg.Idx, err)
		}
	}
	return x, nil
}
