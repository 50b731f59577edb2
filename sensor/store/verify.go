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
	// the log's records, and the catalog, where it lists the segment, says
	// the same of it.
	Err error
}

// Verify checks the sealed segments of the store at dir without changing
// anything: each index must be present, pass its checksums, and agree with
// its log record by record (offset, time, kind, verdict, container, loss
// report), the log must end at its last record, and the catalog's summary
// of the segment, if it has one, must agree with the index. The last
// segment, when it has no index, is the one being written and is not
// checked. An error is returned only when the store cannot be listed.
func Verify(dir string) ([]SegmentCheck, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	cat := readCatalog(dir)
	var out []SegmentCheck
	for i, seg := range segs {
		if _, err := os.Stat(seg.Idx); errors.Is(err, os.ErrNotExist) && i == len(segs)-1 {
			break
		}
		c := SegmentCheck{Log: seg.Log}
		c.Events, c.Err = verifySegment(seg, cat[seg.First])
		out = append(out, c)
	}
	return out, nil
}

func verifySegment(seg segment, listed *summary) (int, error) {
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
	}
	if err := sameIndex(x, fromLog); err != nil {
		return 0, fmt.Errorf("%s: %w", seg.Log, err)
	}
	if listed != nil && !sameSummary(*listed, summarise(x)) {
		return 0, fmt.Errorf("%s: the catalog's summary differs from the index", seg.Log)
	}
	return int(n), nil
}

// sameIndex compares an index file's contents with the index of its log.
func sameIndex(x, fromLog *segIndex) error {
	switch {
	case x.MinTime != fromLog.MinTime || x.MaxTime != fromLog.MaxTime:
		return errors.New("the index's time range differs from the log's")
	case !slices.Equal(x.Syms, fromLog.Syms):
		return errors.New("the index's containers differ from the log's")
	case !slices.Equal(x.loss, fromLog.loss):
		return errors.New("the index's loss reports differ from the log's")
	}
	for s := range fromLog.runs {
		if i := firstDifference(x.runs[s], fromLog.runs[s]); i >= 0 {
			return fmt.Errorf("index entry %d of container %d differs from the log's record", i, s)
		}
	}
	return nil
}

// firstDifference returns the first position where a and b differ, or -1.
func firstDifference(a, b []entry) int {
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) || a[i] != b[i] {
			return i
		}
	}
	return -1
}

func sameSummary(a, b summary) bool {
	if a.minTime != b.minTime || a.maxTime != b.maxTime || a.events != b.events || a.losses != b.losses || a.nsyms() != b.nsyms() {
		return false
	}
	for s := range uint32(a.nsyms()) {
		if *a.container(s) != *b.container(s) {
			return false
		}
	}
	return true
}
