package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
)

// BenchmarkQueryWindow asks for one container's hour out of a day of events,
// opening a fresh reader each time as a CLI call does.
func BenchmarkQueryWindow(b *testing.B) {
	dir := fillDay(b, func(int) event.Kind { return event.KindFile })
	q := Query{Container: "c07", Since: t0.Add(12 * time.Hour), Until: t0.Add(13 * time.Hour)}
	b.ResetTimer()
	for b.Loop() {
		r, err := OpenReader(dir)
		if err != nil {
			b.Fatal(err)
		}
		res, err := r.Query(q)
		r.Close()
		if err != nil || len(res.Events) == 0 {
			b.Fatal(err, len(res.Events))
		}
	}
}

// BenchmarkQueryScans measures the queries that read a whole window's index
// entries rather than one container's run: kind and verdict are filtered on
// the entries, and a limit stops collecting once later segments cannot
// change the answer.
func BenchmarkQueryScans(b *testing.B) {
	dir := fillDay(b, func(i int) event.Kind {
		if i%100 == 0 {
			return event.KindExec
		}
		return event.KindFile
	})
	hour := func(q Query) Query {
		q.Since, q.Until = t0.Add(12*time.Hour), t0.Add(13*time.Hour)
		return q
	}
	cases := []struct {
		name string
		q    Query
		want int
	}{
		{"kind exec, every container, 1h", hour(Query{Kinds: []event.Kind{event.KindExec}}), 417},
		{"verdict deny, every container, 1h (none)", hour(Query{Verdicts: []event.Verdict{event.VerdictDeny}}), 0},
		{"every event, 1h", hour(Query{}), 41667},
		{"limit 100, every event, 24h", Query{Limit: 100}, 100},
		{"limit 100, kind exec, 24h", Query{Limit: 100, Kinds: []event.Kind{event.KindExec}}, 100},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				r, err := OpenReader(dir)
				if err != nil {
					b.Fatal(err)
				}
				res, err := r.Query(c.q)
				r.Close()
				if err != nil || abs(len(res.Events)-c.want) > 1 {
					b.Fatalf("%v: %d events, want %d", err, len(res.Events), c.want)
				}
			}
		})
	}
}

func abs(n int) int { return max(n, -n) }

// fillDay stores a million events of 50 containers spread over a day from
// t0, the kind of event i chosen by kind, and returns the store directory.
func fillDay(b *testing.B, kind func(i int) event.Kind) string {
	b.Helper()
	dir, w := fillOpen(b, 1_000_000, Options{}, func(i int) event.Event { return ev(0, fmt.Sprintf("c%02d", (i*7919)%50), kind(i)) })
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// fillOpen stores n events, event i made by eventAt, spread over a day from
// t0 in batches of 4096, and returns the store with its writer still open.
func fillOpen(b *testing.B, n int, opts Options, eventAt func(i int) event.Event) (string, *Writer) {
	b.Helper()
	dir := b.TempDir()
	w, err := OpenWriter(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]event.Event, 0, 4096)
	for i := 0; i < n; i++ {
		e := eventAt(i)
		e.Time = t0.Add(time.Duration(float64(24*time.Hour) * float64(i) / float64(n)))
		batch = append(batch, e)
		if len(batch) == cap(batch) || i == n-1 {
			if err := w.Append(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	return dir, w
}

// BenchmarkQueryQuiet asks for a quiet container's 7 events out of 300,000,
// with a fresh reader each time as a CLI call does: on the store as a
// running daemon leaves it (sealed segments, and the segment being
// written) and once the writer has closed it; in segments of the default
// size (two sealed, 37,856 events in the one being written) and in 100
// segments of 3,000 events, which a query passes over on the catalog.
func BenchmarkQueryQuiet(b *testing.B) {
	const n = 300_000
	p := newWritePool(b)
	for _, c := range []struct {
		name string
		opts Options
	}{{"default segments", Options{}}, {"100 segments", Options{SegmentEvents: 3000}}} {
		dir, w := fillOpen(b, n, c.opts, func(i int) event.Event {
			if i%(n/8) == 0 && i > 0 {
				return ev(i, "quiet", event.KindExec)
			}
			return p.events[i%len(p.events)]
		})
		ask := func(b *testing.B) {
			for b.Loop() {
				r, err := OpenReader(dir)
				if err != nil {
					b.Fatal(err)
				}
				res, err := r.Query(Query{Container: "quiet"})
				r.Close()
				if err != nil || len(res.Events) != 7 {
					b.Fatalf("%v: %d events, want 7", err, len(res.Events))
				}
			}
		}
		b.Run(c.name+", while written", ask)
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name+", closed", ask)
	}
}
