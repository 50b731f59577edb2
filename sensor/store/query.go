package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
)

// Query selects events. Empty fields match everything; all given fields must match.
type Query struct {
	Since, Until time.Time // Until is exclusive; zero values leave the window open
	// Container matches a container's name, its id, or a prefix of its id.
	Container string
	Pod       string
	Namespace string
	// Image matches the image reference exactly or as a glob (registry/app/*).
	Image    string
	Kinds    []event.Kind
	Verdicts []event.Verdict
	// Limit returns at most this many events, the oldest first; 0 is no limit.
	Limit int
}

// Match is one stored event.
type Match struct {
	Time time.Time
	JSON []byte
}

// Result is a query's answer.
type Result struct {
	Events []Match
	// Lost sums, by cause, the events the sensor reported lost inside the
	// window: the answer may be incomplete by that much.
	Lost map[string]uint64
	// Truncated is true when Limit cut the answer short.
	Truncated bool
}

// Reader answers queries on a store directory. It may run in another
// process than the writer, while the writer appends.
type Reader struct {
	dir     string
	sealed  map[string]*openSegment
	headers map[string][2]int64 // time range of sealed segments
}

type openSegment struct {
	m *mapped
	x *segIndex
}

// OpenReader opens the store at dir for queries.
func OpenReader(dir string) (*Reader, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("store %s: not a directory", dir)
	}
	return &Reader{dir: dir, sealed: make(map[string]*openSegment), headers: make(map[string][2]int64)}, nil
}

// Close releases the reader's maps.
func (r *Reader) Close() error {
	var errs []error
	for k, s := range r.sealed {
		errs = append(errs, s.m.close())
		delete(r.sealed, k)
	}
	return errors.Join(errs...)
}

// Query runs q over every segment that may hold matching events. With a
// Limit, the answer is kept to the oldest Limit events as segments are read,
// and a segment whose oldest event is no older than the newest kept one is
// not collected from: it cannot change the answer (segments are in write
// order, which is nearly time order). Loss reports are summed over the
// whole window in any case.
func (r *Reader) Query(q Query) (*Result, error) {
	since, until := int64(-1<<63), int64(1<<63-1)
	if !q.Since.IsZero() {
		since = q.Since.UnixNano()
	}
	if !q.Until.IsZero() {
		until = q.Until.UnixNano()
	}
	segs, err := listSegments(r.dir)
	if err != nil {
		return nil, err
	}
	res := &Result{Lost: make(map[string]uint64)}
	var hits []hit
	for i, seg := range segs {
		if h, ok := r.header(seg); ok && (h[1] < since || h[0] >= until) {
			continue
		}
		s, release, err := r.open(seg, i == len(segs)-1)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed by retention meanwhile
			}
			return nil, err
		}
		if s.x.MaxTime >= since && s.x.MinTime < until {
			if q.Limit > 0 && len(hits) == q.Limit && s.x.MinTime >= hits[q.Limit-1].e.Time {
				// Whatever matches here sorts after the kept answer.
				res.Truncated = res.Truncated || q.anyMatch(s.x, since, until)
			} else {
				var more bool
				hits, more = q.collect(hits, s, release != nil, since, until)
				res.Truncated = res.Truncated || more
				if q.Limit > 0 && len(hits) >= q.Limit {
					sortHits(hits) // so that hits[Limit-1] is the newest kept
					if len(hits) > q.Limit {
						hits, res.Truncated = hits[:q.Limit], true
					}
				}
			}
			addLostIn(res.Lost, s, since, until)
		}
		if release != nil {
			release()
		}
	}
	r.forgetMissing(segs)
	sortHits(hits)
	res.Events = make([]Match, len(hits))
	for i, h := range hits {
		js := h.data
		if h.e.Off >= 0 {
			js = slices.Clone(payloadJSON(h.data, h.e.Off))
		}
		res.Events[i] = Match{Time: time.Unix(0, h.e.Time), JSON: js}
	}
	return res, nil
}

// hit is a matching record: an index entry and the segment data it points
// into, or, with Off -1, its JSON already copied out.
type hit struct {
	e    entry
	data []byte
}

// sortHits orders hits by time; ties keep the order they were found in.
func sortHits(hits []hit) {
	slices.SortStableFunc(hits, func(a, b hit) int {
		switch {
		case a.e.Time < b.e.Time:
			return -1
		case a.e.Time > b.e.Time:
			return 1
		}
		return 0
	})
}

// collect appends the segment's matching records to hits. The records of
// a segment that is about to be unmapped (the active one) are copied. With
// a Limit, it takes at most Limit records from each container's run (a run
// is in time order, so the rest would sort after them) and reports whether
// it left a matching one behind.
func (q *Query) collect(hits []hit, s *openSegment, copyOut bool, since, until int64) ([]hit, bool) {
	more := false
	for sym, c := range s.x.Syms {
		if !q.matchesContainer(c) {
			continue
		}
		lo, hi := s.x.bounds(uint32(sym), since, until)
		taken := 0
		for i := lo; i < hi; i++ {
			e := s.x.at(i)
			if !q.matchesKind(e.Kind) || !q.matchesVerdict(e.Verdict) {
				continue
			}
			if q.Limit > 0 && taken == q.Limit {
				more = true
				break
			}
			taken++
			if copyOut {
				hits = append(hits, hit{entry{Time: e.Time, Off: -1}, payloadJSON(s.m.data, e.Off)})
			} else {
				hits = append(hits, hit{e, s.m.data})
			}
		}
	}
	return hits, more
}

// anyMatch reports whether the index holds a record that q selects.
func (q *Query) anyMatch(x *segIndex, since, until int64) bool {
	for sym, c := range x.Syms {
		if !q.matchesContainer(c) {
			continue
		}
		lo, hi := x.bounds(uint32(sym), since, until)
		for i := lo; i < hi; i++ {
			if e := x.at(i); q.matchesKind(e.Kind) && q.matchesVerdict(e.Verdict) {
				return true
			}
		}
	}
	return false
}

// addLostIn sums the loss reports of a segment inside the window: sensor
// events of no container.
func addLostIn(lost map[string]uint64, s *openSegment, since, until int64) {
	lo, hi := s.x.bounds(0, since, until)
	for i := lo; i < hi; i++ {
		if e := s.x.at(i); kinds()[int(e.Kind)%len(kinds())] == event.KindSensor {
			addLost(lost, s.m.data, e.Off)
		}
	}
}

// header returns a sealed segment's time range, reading it once.
func (r *Reader) header(seg segment) ([2]int64, bool) {
	if h, ok := r.headers[seg.Log]; ok {
		return h, true
	}
	lo, hi, err := readIndexHeader(seg.Idx)
	if err != nil {
		return [2]int64{}, false // not sealed, or damaged: open decides
	}
	r.headers[seg.Log] = [2]int64{lo, hi}
	return r.headers[seg.Log], true
}

// forgetMissing unmaps cached segments that retention has deleted.
func (r *Reader) forgetMissing(segs []segment) {
	live := make(map[string]bool, len(segs))
	for _, s := range segs {
		live[s.Log] = true
	}
	for k := range r.headers {
		if !live[k] {
			delete(r.headers, k)
		}
	}
	for k, s := range r.sealed {
		if !live[k] {
			s.m.close()
			delete(r.sealed, k)
		}
	}
}

// open maps a segment. Sealed segments are cached; the active one is
// mapped afresh for each query (it grows) and released by the caller.
func (r *Reader) open(seg segment, last bool) (*openSegment, func(), error) {
	if s, ok := r.sealed[seg.Log]; ok {
		return s, nil, nil
	}
	m, err := mapFile(seg.Log)
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(seg.Idx); err == nil || !last {
		x, err := loadIndex(seg, m.data, false)
		if err != nil {
			m.close()
			return nil, nil, err
		}
		s := &openSegment{m: m, x: x}
		r.sealed[seg.Log] = s
		return s, nil, nil
	}
	x, _, _ := scan(m.data)
	x.seal()
	s := &openSegment{m: m, x: x}
	return s, func() { m.close() }, nil
}

func payloadJSON(data []byte, off int64) []byte {
	payload, _, err := readFrame(data, off)
	if err != nil {
		return nil
	}
	_, js, err := parsePayload(payload)
	if err != nil {
		return nil
	}
	return slices.Clone(js)
}

func addLost(lost map[string]uint64, data []byte, off int64) {
	var e struct {
		Counts map[string]uint64 `json:"counts"`
		Msg    string            `json:"message"`
	}
	if json.Unmarshal(payloadJSON(data, off), &e) != nil || e.Msg != LostMessage {
		return
	}
	for k, v := range e.Counts {
		lost[k] += v
	}
}

// LostMessage is the message of the sensor events that report losses.
const LostMessage = "events lost"

// IsLossReport reports whether e is a sensor's report of lost events: such
// a report concerns every query, whatever its filter.
func IsLossReport(e *event.Event) bool {
	return e.Kind == event.KindSensor && e.Container == nil && e.Message == LostMessage
}

func (q *Query) matchesContainer(c container) bool {
	if q.Container != "" && c.Name != q.Container && !(c.ID != "" && strings.HasPrefix(c.ID, q.Container)) {
		return false
	}
	if q.Pod != "" && c.Pod != q.Pod {
		return false
	}
	if q.Namespace != "" && c.Namespace != q.Namespace {
		return false
	}
	if q.Image != "" && c.Image != q.Image {
		if ok, _ := path.Match(q.Image, c.Image); !ok {
			return false
		}
	}
	return true
}

func (q *Query) matchesKind(code uint8) bool {
	if len(q.Kinds) == 0 {
		return true
	}
	return slices.Contains(q.Kinds, kinds()[int(code)%len(kinds())])
}

func (q *Query) matchesVerdict(code uint8) bool {
	if len(q.Verdicts) == 0 {
		return true
	}
	return slices.Contains(q.Verdicts, verdicts()[int(code)%len(verdicts())])
}

// Matches reports whether a live event satisfies q (for streams: the same
// selection as a stored query).
func (q *Query) Matches(e *event.Event) bool {
	m := metaOf(e)
	t := e.Time.UnixNano()
	if (!q.Since.IsZero() && t < q.Since.UnixNano()) || (!q.Until.IsZero() && t >= q.Until.UnixNano()) {
		return false
	}
	return q.matchesContainer(m.Container) && q.matchesKind(m.Kind) && q.matchesVerdict(m.Verdict)
}
