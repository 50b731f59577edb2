package store

import (
	"errors"
	"fmt"
	"os"
	"slices"
)

// SegmentCheck is the verdict on one sealed segment.
type SegmentCheck struct {
	Log    string
	Events int
	// Err is nil when the index is present, undamaged, and lists exactly
	// the log's records.
	Err error
}

// Verify checks the sealed segments of the store at dir without changing
// anything: each index must be present, pass its checksum, and agree with
// its log record by record (offset, time, kind, verdict, container), and
// the log must end at its last record. The last segment, when it has no
// index, is the one being written and is not checked. An error is returned
// only when the store cannot be listed.
func Verify(dir string) ([]SegmentCheck, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	var out []SegmentCheck
	for i, seg := range segs {
		if _, err := os.Stat(seg.Idx); errors.Is(err, os.ErrNotExist) && i == len(segs)-1 {
			break
		}
		c := SegmentCheck{Log: seg.Log}
		c.Events, c.Err = verifySegment(seg)
		out = append(out, c)
	}
	return out, nil
}

func verifySegment(seg segment) (int, error) {
	b, err := os.ReadFile(seg.Idx)
	if err != nil {
		return 0, fmt.Errorf("index: %w", err)
	}
	x, err := unmarshalIndex(b)
	if err != nil {
		return 0, fmt.Errorf("index %s: %w", seg.Idx, err)
	}
	m, err := mapFile(seg.Log)
	if err != nil {
		return 0, err
	}
	defer m.close()
	fromLog, n, end := scan(m.data)
	fromLog.seal()
	switch {
	case end != int64(len(m.data)):
		return 0, fmt.Errorf("%s: a damaged record at offset %d of %d", seg.Log, end, len(m.data))
	case uint64(x.count()) != n:
		return 0, fmt.Errorf("%s: the index lists %d records, the log holds %d", seg.Log, x.count(), n)
	case x.MinTime != fromLog.MinTime || x.MaxTime != fromLog.MaxTime:
		return 0, fmt.Errorf("%s: the index's time range differs from the log's", seg.Log)
	case !slices.Equal(x.Syms, fromLog.Syms):
		return 0, fmt.Errorf("%s: the index's containers differ from the log's", seg.Log)
	}
	for i := range fromLog.Entries {
		if x.at(i) != fromLog.Entries[i] {
			return 0, fmt.Errorf("%s: index entry %d differs from the log's record", seg.Log, i)
		}
	}
	return int(n), nil
}
