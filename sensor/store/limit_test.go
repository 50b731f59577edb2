package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
)

// TestLimitMatchesFullQuery compares limited queries, which stop collecting
// early, with the full answer cut to the same length, on a store whose
// segments overlap in time (events are written in arrival order, not
// strictly time order) and share timestamps.
func TestLimitMatchesFullQuery(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(dir, Options{SegmentEvents: 50})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var batch []event.Event
	for i := 0; i < 1000; i++ {
		e := ev(i, []string{"web", "db", ""}[rng.IntN(3)], []event.Kind{event.KindFile, event.KindExec}[rng.IntN(2)])
		// Up to 30 s early, in whole seconds: segments overlap and times repeat.
		e.Time = e.Time.Add(-time.Duration(rng.IntN(30)) * time.Second)
		if i%97 == 0 {
			e = event.Event{Time: e.Time, Kind: event.KindSensor, Message: event.LossMessage, PID: uint32(i), Counts: map[string]uint64{"ring_full_file": uint64(i)}}
		}
		batch = append(batch, e)
		if len(batch) == 1+rng.IntN(20) {
			if err := w.Append(batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := w.Append(batch); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Segments < 15 {
		t.Fatalf("%d segments", st.Segments)
	}
	// The active segment is scanned, the sealed ones read through their index.
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	queries := []Query{
		{},
		{Container: "web"},
		{Kinds: []event.Kind{event.KindExec}},
		{Since: t0.Add(200 * time.Second), Until: t0.Add(700 * time.Second)},
		{Container: "db", Kinds: []event.Kind{event.KindFile}, Since: t0.Add(500 * time.Second)},
		{Verdicts: []event.Verdict{event.VerdictDeny}},
	}
	for qi, q := range queries {
		full, err := r.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, limit := range []int{1, 2, 7, 50, 120, len(full.Events) - 1, len(full.Events), len(full.Events) + 1} {
			if limit <= 0 {
				continue
			}
			t.Run(fmt.Sprintf("query %d limit %d", qi, limit), func(t *testing.T) {
				lq := q
				lq.Limit = limit
				got, err := r.Query(lq)
				if err != nil {
					t.Fatal(err)
				}
				want := full.Events[:min(limit, len(full.Events))]
				if !slices.EqualFunc(got.Events, want, func(a, b Match) bool { return a.Time.Equal(b.Time) && string(a.JSON) == string(b.JSON) }) {
					t.Fatalf("got %v, want %v", pids(t, got), pids(t, &Result{Events: want}))
				}
				if wantTrunc := len(full.Events) > limit; got.Truncated != wantTrunc {
					t.Fatalf("truncated %v, want %v", got.Truncated, wantTrunc)
				}
				if fmt.Sprint(got.Lost) != fmt.Sprint(full.Lost) {
					t.Fatalf("lost %v, want %v", got.Lost, full.Lost)
				}
			})
		}
	}
}

// TestLimitTruncated: an answer cut by the limit says so, also when one
// container's run in one segment holds every match.
func TestLimitTruncated(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var evs []event.Event
	for i := 0; i < 10; i++ {
		evs = append(evs, ev(i, "web", event.KindFile))
	}
	if err := w.Append(evs); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, sealed := range []bool{false, true} {
		if sealed {
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			limit     int
			truncated bool
		}{{1, true}, {3, true}, {9, true}, {10, false}, {11, false}} {
			res, err := r.Query(Query{Container: "web", Limit: c.limit})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Events) != min(c.limit, 10) || res.Truncated != c.truncated {
				t.Errorf("sealed %v, limit %d: %d events, truncated %v; want %d, %v", sealed, c.limit, len(res.Events), res.Truncated, min(c.limit, 10), c.truncated)
			}
		}
	}
}
