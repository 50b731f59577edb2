package store

import (
	"errors"
	"fmt"
	"os"
)

// segView is one segment as a query reads it: its summary first (from the
// catalog or its index's head), then, only if the query needs them, the
// runs of its index and the records of its log, both memory-mapped.
type segView struct {
	seg segment
	sum summary
	idx index // nil until needed
	// idxMap and log are the maps behind idx and the records, nil until needed.
	idxMap *mapped
	log    *mapped
	// active marks the segment being written: indexed in memory from its
	// live file, and released after each query.
	active bool
}

// view returns segment seg as the query will read it. A sealed segment is
// summarised by the catalog when it lists it (nothing is opened), else by
// its index's head; a sealed segment whose index is missing, damaged or of
// another format is indexed from its log instead. The last segment without
// an index is the one being written.
//
// The index of the segment being written keeps only the runs of the
// containers keep selects.
func (r *Reader) view(seg segment, last bool, cat map[uint64]*summary, keep func(container) bool) (*segView, error) {
	if v, ok := r.sealed[seg.Log]; ok {
		return v, nil
	}
	if s, ok := cat[seg.First]; ok {
		v := &segView{seg: seg, sum: *s}
		r.sealed[seg.Log] = v
		return v, nil
	}
	v := &segView{seg: seg}
	err := v.openIndex()
	if errors.Is(err, os.ErrNotExist) && last {
		return r.activeView(seg, keep)
	}
	if err != nil && !errors.Is(err, errBadIndex) && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		// Sealed, but its index cannot be used: a crash while sealing, damage, or an older format.
		if err := v.rebuild(); err != nil {
			return nil, err
		}
	}
	r.sealed[seg.Log] = v
	return v, nil
}

// openIndex maps the segment's index file and reads its head.
func (v *segView) openIndex() error {
	m, err := mapFile(v.seg.Idx)
	if err != nil {
		return err
	}
	d, err := parseIndex(m.data)
	if err == nil && v.sum.nsyms() == 0 { // not summarised by the catalog
		v.sum, err = d.summary()
	}
	if err != nil {
		m.close()
		return err
	}
	v.idx, v.idxMap = d, m
	return nil
}

// activeView indexes the segment being written: the live file's entries,
// then from the log whatever follows the last of them. The live file is
// mapped and read before the log is mapped, so that it never lists a
// record the log's map lacks.
func (r *Reader) activeView(seg segment, keep func(container) bool) (*segView, error) {
	lm, err := mapFile(seg.Live)
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(seg.Idx); serr == nil {
			return r.view(seg, false, nil, nil) // sealed meanwhile
		}
	} else if err != nil {
		return nil, err
	}
	var x *segIndex
	if lm != nil {
		x = parseLive(lm.data, keep)
		lm.close()
	}
	m, err := mapFile(seg.Log)
	if err != nil {
		return nil, err
	}
	if x == nil || !x.indexTail(m.data) {
		x, _, _ = scan(m.data)
	}
	x.seal()
	return &segView{seg: seg, sum: summarise(x), idx: x, log: m, active: true}, nil
}

// indexTail adds the records that follow the last one indexed, or reports
// that the index does not fit the log.
func (x *segIndex) indexTail(data []byte) bool {
	var off int64
	if x.lastOff >= 0 {
		_, next, err := readFrame(data, x.lastOff)
		if err != nil {
			return false
		}
		off = next
	}
	scanFrom(data, off, x)
	return true
}

// rebuild indexes the segment from its log, replacing an index that
// cannot be read.
func (v *segView) rebuild() error {
	data, err := v.logData()
	if err != nil {
		return err
	}
	x, _, _ := scan(data)
	x.seal()
	v.idxMap.close()
	v.idx, v.idxMap, v.sum = x, nil, summarise(x)
	return nil
}

// index returns the segment's index, opening it on first use.
func (v *segView) index() (index, error) {
	if v.idx != nil {
		return v.idx, nil
	}
	// An index missing (a crash while sealing) or unreadable: the log has it all.
	err := v.openIndex()
	if errors.Is(err, errBadIndex) || errors.Is(err, os.ErrNotExist) {
		err = v.rebuild()
	}
	return v.idx, err
}

func (v *segView) logData() ([]byte, error) {
	if v.log == nil {
		m, err := mapFile(v.seg.Log)
		if err != nil {
			return nil, err
		}
		v.log = m
	}
	return v.log.data, nil
}

// eachInWindow calls fn with the part of each given symbol's run that lies
// in the window, skipping runs whose time range misses it unread. A run
// that fails its checksum has the segment indexed from its log instead.
func (v *segView) eachInWindow(syms []uint32, since, until int64, fn func([]entry) error) error {
	for _, s := range syms {
		idx, err := v.index()
		if err != nil {
			return err
		}
		if lo, hi := idx.runTimes(s); hi < since || lo >= until {
			continue
		}
		run, err := idx.runEntries(s)
		if errors.Is(err, errBadIndex) {
			if run, err = v.rebuiltRun(s); err != nil {
				return err
			}
		}
		if err != nil {
			return err
		}
		lo, hi := bounds(run, since, until)
		if err := fn(run[lo:hi]); err != nil {
			return err
		}
	}
	return nil
}

// rebuiltRun indexes the segment from its log and returns the run of the
// container symbol s stood for.
func (v *segView) rebuiltRun(s uint32) ([]entry, error) {
	c := *v.sum.container(s)
	if err := v.rebuild(); err != nil {
		return nil, err
	}
	x := v.idx.(*segIndex)
	if s, ok := x.symbol(c); ok {
		return x.runs[s], nil
	}
	return nil, nil
}

// jsonAt returns the JSON of the record at off, in the log's map.
func (v *segView) jsonAt(off uint32) ([]byte, error) {
	_, js, err := v.parts(off)
	return js, err
}

// parts returns the loss section and the JSON of the record at off.
func (v *segView) parts(off uint32) (counts, js []byte, err error) {
	data, err := v.logData()
	if err != nil {
		return nil, nil, err
	}
	payload, _, err := readFrame(data, int64(off))
	if err == nil {
		counts, js, err = payloadParts(payload)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: the record at offset %d, which its index lists, is damaged", v.seg.Log, off)
	}
	return counts, js, nil
}

// addLost sums the loss reports of the segment inside the window, from
// their records' loss sections.
func (v *segView) addLost(lost map[string]uint64, since, until int64) error {
	idx, err := v.index()
	if err != nil {
		return err
	}
	reports, err := idx.lossEntries()
	if err != nil {
		return err
	}
	lo, hi := bounds(reports, since, until)
	for _, e := range reports[lo:hi] {
		counts, _, err := v.parts(e.Off)
		if err != nil {
			return err
		}
		addCounts(lost, counts)
	}
	return nil
}

func (v *segView) close() error {
	err := errors.Join(v.log.close(), v.idxMap.close())
	v.log, v.idxMap = nil, nil
	return err
}

// forgetMissing unmaps cached segments that retention has deleted.
func (r *Reader) forgetMissing(segs []segment) {
	live := make(map[string]bool, len(segs))
	for _, s := range segs {
		live[s.Log] = true
	}
	for k, v := range r.sealed {
		if !live[k] {
			v.close()
			delete(r.sealed, k)
		}
	}
}
