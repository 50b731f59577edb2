package store

import (
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
	Container    string
	Pod          string
	PodNamespace string
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
	dir string
	// sealed caches the sealed segments opened so far, by log path.
	sealed map[string]*segView
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
	return &Reader{dir: dir, sealed: make(map[string]*segView)}, nil
}

// Close releases the reader's maps.
func (r *Reader) Close() error {
	var errs []error
	for k, v := range r.sealed {
		errs = append(errs, v.close())
		delete(r.sealed, k)
	}
	return errors.Join(errs...)
}

// window returns q's time window in unix nanoseconds, until exclusive.
func (q *Query) window() (since, until int64) {
	since, until = -1<<63, 1<<63-1
	if !q.Since.IsZero() {
		since = q.Since.UnixNano()
	}
	if !q.Until.IsZero() {
		until = q.Until.UnixNano()
	}
	return since, until
}

// Query runs q over every segment that may hold matching events: a segment
// whose time range misses the window, or that holds none of the selected
// containers and no loss report, is passed over on its summary alone, and
// of the others only the selected containers' runs are read. With a
// Limit, the answer is kept to the oldest Limit events as segments are
// read, and a segment whose oldest event is no older than the newest kept
// one is not collected from: it cannot change the answer (segments are in
// write order, which is nearly time order). Loss reports are summed over
// the whole window in any case.
func (r *Reader) Query(q Query) (*Result, error) {
	segs, err := listSegments(r.dir)
	if err != nil {
		return nil, err
	}
	cat := readCatalog(r.dir)
	res := &Result{Lost: make(map[string]uint64)}
	var hits []hit
	for i, seg := range segs {
		v, err := r.view(seg, i == len(segs)-1, cat, q.keeps)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed by retention meanwhile
		}
		if err != nil {
			return nil, err
		}
		hits, err = q.fromSegment(hits, v, res)
		if v.active {
			v.close()
		}
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	r.forgetMissing(segs)
	sortHits(hits)
	res.Events = make([]Match, len(hits))
	for i, h := range hits {
		js := h.js
		if js == nil {
			if js, err = h.v.jsonAt(h.e.Off); err != nil {
				return nil, err
			}
			js = slices.Clone(js)
		}
		res.Events[i] = Match{Time: time.Unix(0, h.e.Time), JSON: js}
	}
	return res, nil
}

// fromSegment adds what segment v holds for q to hits and res.
func (q *Query) fromSegment(hits []hit, v *segView, res *Result) ([]hit, error) {
	since, until := q.window()
	if v.sum.maxTime < since || v.sum.minTime >= until {
		return hits, nil
	}
	syms := q.matching(&v.sum)
	var err error
	switch {
	case len(syms) == 0:
	case q.Limit > 0 && len(hits) == q.Limit && v.sum.minTime >= hits[q.Limit-1].e.Time:
		// Whatever matches here sorts after the kept answer.
		if !res.Truncated {
			res.Truncated, err = q.anyMatch(v, syms, since, until)
		}
	default:
		var more bool
		hits, more, err = q.collect(hits, v, syms, since, until)
		res.Truncated = res.Truncated || more
		if q.Limit > 0 && len(hits) >= q.Limit {
			sortHits(hits) // so that hits[Limit-1] is the newest kept
			if len(hits) > q.Limit {
				hits, res.Truncated = hits[:q.Limit], true
			}
		}
	}
	if err == nil && v.sum.losses > 0 {
		err = v.addLost(res.Lost, since, until)
	}
	return hits, err
}

// hit is a matching record: its index entry and segment, or for the
// segment being written, its JSON already copied out.
type hit struct {
	e  entry
	v  *segView
	js []byte
}

// sortHits orders hits by time; ties keep the order they were found in.
func sortHits(hits []hit) {
	slices.SortStableFunc(hits, func(a, b hit) int { return byTime(a.e, b.e) })
}

// matching returns the symbols of the containers q selects.
func (q *Query) matching(sum *summary) []uint32 {
	var out []uint32
	for s := range uint32(sum.nsyms()) {
		if q.matchesContainer(sum.container(s)) {
			out = append(out, s)
		}
	}
	return out
}

// collect appends the segment's matching records to hits. The JSON of the
// segment being written is copied out, as it is unmapped after the query.
// With a Limit, it takes at most Limit records from each container's run
// (a run is in time order, so the rest would sort after them) and reports
// whether it left a matching one behind.
func (q *Query) collect(hits []hit, v *segView, syms []uint32, since, until int64) ([]hit, bool, error) {
	// Map the log before taking anything from it: the map keeps the records
	// readable should retention delete the file meanwhile.
	if _, err := v.logData(); err != nil {
		return hits, false, err
	}
	more := false
	err := v.eachInWindow(syms, since, until, func(run []entry) error {
		taken := 0
		for _, e := range run {
			if !q.matchesKind(e.Kind) || !q.matchesVerdict(e.Verdict) {
				continue
			}
			if q.Limit > 0 && taken == q.Limit {
				more = true
				return nil
			}
			taken++
			h := hit{e: e, v: v}
			if v.active {
				js, err := v.jsonAt(e.Off)
				if err != nil {
					return err
				}
				h.js = slices.Clone(js)
			}
			hits = append(hits, h)
		}
		return nil
	})
	return hits, more, err
}

// anyMatch reports whether the segment holds a record that q selects.
func (q *Query) anyMatch(v *segView, syms []uint32, since, until int64) (bool, error) {
	found := false
	err := v.eachInWindow(syms, since, until, func(run []entry) error {
		found = found || slices.ContainsFunc(run, func(e entry) bool { return q.matchesKind(e.Kind) && q.matchesVerdict(e.Verdict) })
		return nil
	})
	return found, err
}

func (q *Query) matchesContainer(c *container) bool {
	if q.Container != "" && c.Name != q.Container && !(c.ID != "" && strings.HasPrefix(c.ID, q.Container)) {
		return false
	}
	if q.Pod != "" && c.Pod != q.Pod {
		return false
	}
	if q.PodNamespace != "" && c.PodNamespace != q.PodNamespace {
		return false
	}
	if q.Image != "" && c.Image != q.Image {
		if ok, _ := path.Match(q.Image, c.Image); !ok {
			return false
		}
	}
	return true
}

// keeps is matchesContainer for a container value.
func (q *Query) keeps(c container) bool { return q.matchesContainer(&c) }

func (q *Query) matchesKind(code uint8) bool {
	return len(q.Kinds) == 0 || slices.Contains(q.Kinds, kindOf(code))
}

func (q *Query) matchesVerdict(code uint8) bool {
	return len(q.Verdicts) == 0 || slices.Contains(q.Verdicts, verdictOf(code))
}

// Matches reports whether a live event satisfies q (for streams: the same
// selection as a stored query).
func (q *Query) Matches(e *event.Event) bool {
	m := metaOf(e)
	since, until := q.window()
	if m.Time < since || m.Time >= until {
		return false
	}
	return q.matchesContainer(&m.Container) && q.matchesKind(m.Kind) && q.matchesVerdict(m.Verdict)
}
