package store

import (
	"slices"
	"sort"
)

// entry locates one record of a segment.
type entry struct {
	Time    int64
	Off     uint32 // segments are smaller than 4 GiB (Options.Check)
	Kind    uint8
	Verdict uint8
}

// segIndex is a segment's index in memory: the records of each container
// ("symbol") in a run of their own, and the loss reports apart. The writer
// builds it for the segment it fills; readers build one for the segment
// being written (from its live file) and for a segment whose index file is
// missing or damaged (from its log).
type segIndex struct {
	MinTime, MaxTime int64
	// Syms are the distinct containers of the segment, in the order they
	// first appeared; symbol 0 is "none".
	Syms []container
	// runs[s] are symbol s's records: in write order while the segment is
	// written, in time order once sealed.
	runs [][]entry
	// loss are the loss reports, in the same order as the runs.
	loss  []entry
	n     int
	symOf map[container]uint32
	// strBytes is what Syms take in an index file.
	strBytes int64
	// lastOff is the offset of the last record added, -1 before the first.
	lastOff int64
}

// newSegIndex returns an index with only symbol 0, "no container".
func newSegIndex() *segIndex {
	x := emptyIndex()
	x.addSymbol(container{})
	return x
}

func emptyIndex() *segIndex {
	return &segIndex{MinTime: 1<<63 - 1, MaxTime: -1 << 63, symOf: make(map[container]uint32), lastOff: -1}
}

// count returns the number of records indexed.
func (x *segIndex) count() int { return x.n }

// symbol returns the symbol of c, if the index has one.
func (x *segIndex) symbol(c container) (uint32, bool) {
	s, ok := x.symOf[c]
	return s, ok
}

// addSymbol gives c the next symbol.
func (x *segIndex) addSymbol(c container) uint32 {
	s := uint32(len(x.Syms))
	x.Syms = append(x.Syms, c)
	x.runs = append(x.runs, nil)
	x.symOf[c] = s
	x.strBytes += strSize(c)
	return s
}

// add indexes the record of m at off, giving its container a symbol if it
// has none yet.
func (x *segIndex) add(m meta, off int64) {
	s, ok := x.symbol(m.Container)
	if !ok {
		s = x.addSymbol(m.Container)
	}
	x.addAt(s, m, off)
}

// addAt indexes the record of m at off under symbol s, already resolved.
func (x *segIndex) addAt(s uint32, m meta, off int64) {
	x.runs[s] = append(x.runs[s], entry{Time: m.Time, Off: uint32(off), Kind: m.Kind, Verdict: m.Verdict})
	x.note(m, off)
}

// note counts the record of m at off, and lists it if it is a loss report,
// without adding it to a run: for a reader's index of the active segment,
// which keeps only the runs its query needs.
func (x *segIndex) note(m meta, off int64) {
	if m.Loss {
		x.loss = append(x.loss, entry{Time: m.Time, Off: uint32(off), Kind: m.Kind, Verdict: m.Verdict})
	}
	x.n++
	x.MinTime = min(x.MinTime, m.Time)
	x.MaxTime = max(x.MaxTime, m.Time)
	x.lastOff = max(x.lastOff, off)
}

func byTime(a, b entry) int {
	switch {
	case a.Time < b.Time:
		return -1
	case a.Time > b.Time:
		return 1
	}
	return 0
}

// seal puts each run, and the loss reports, in time order. Events arrive
// nearly in time order, so most runs are sorted already and cost one pass.
func (x *segIndex) seal() {
	for _, r := range x.runs {
		sortByTime(r)
	}
	sortByTime(x.loss)
}

func sortByTime(r []entry) {
	if !slices.IsSortedFunc(r, byTime) {
		slices.SortStableFunc(r, byTime)
	}
}

// strSize is what one container's strings take in an index or live file.
func strSize(c container) int64 {
	var n int64
	for _, s := range c.strings() {
		n += 2 + int64(min(len(*s), 0xffff))
	}
	return n
}

// diskSize is the size of the index file this index seals into.
func (x *segIndex) diskSize() int64 {
	return idxHeader + int64(len(x.Syms))*runSize + x.strBytes + int64(len(x.loss)+x.n)*entrySize
}

// The index interface, as a query sees it.

func (x *segIndex) timeRange() (int64, int64) { return x.MinTime, x.MaxTime }
func (x *segIndex) symbols() ([]container, error) {
	return x.Syms, nil
}
func (x *segIndex) runEntries(s uint32) ([]entry, error) { return x.runs[s], nil }
func (x *segIndex) lossEntries() ([]entry, error)        { return x.loss, nil }
func (x *segIndex) runTimes(s uint32) (int64, int64) {
	r := x.runs[s]
	if len(r) == 0 {
		return 1<<63 - 1, -1 << 63
	}
	return r[0].Time, r[len(r)-1].Time
}

// index is what a query reads of a segment: a sealed index file, or a
// segIndex built in memory (sealed, so that its runs are in time order).
type index interface {
	timeRange() (minTime, maxTime int64)
	symbols() ([]container, error)
	// runTimes is the time range of symbol s's run, to skip it unread.
	runTimes(s uint32) (minTime, maxTime int64)
	// runEntries returns symbol s's run in time order.
	runEntries(s uint32) ([]entry, error)
	// lossEntries returns the loss reports in time order.
	lossEntries() ([]entry, error)
}

// bounds returns the positions [lo, hi) of the entries of a time-ordered
// run with since <= time < until.
func bounds(run []entry, since, until int64) (lo, hi int) {
	lo = sort.Search(len(run), func(i int) bool { return run[i].Time >= since })
	hi = sort.Search(len(run), func(i int) bool { return run[i].Time >= until })
	return lo, max(lo, hi)
}
