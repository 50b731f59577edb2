package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
)

// oracleStore writes n events of a few containers, one of them quiet, with
// loss reports among them, in random batches, and leaves the writer open:
// sealed segments and an active one with its live file. It returns the
// events written and the open writer.
func oracleStore(t *testing.T, dir string, n int) ([]event.Event, *Writer) {
	t.Helper()
	w, err := OpenWriter(dir, Options{SegmentEvents: 64})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var all, batch []event.Event
	for i := 0; i < n; i++ {
		ctr := []string{"web", "db", "", "web", "db"}[rng.IntN(5)]
		if i%97 == 13 {
			ctr = "quiet"
		}
		e := ev(i, ctr, []event.Kind{event.KindFile, event.KindExec, event.KindBind}[rng.IntN(3)])
		e.Time = e.Time.Add(-time.Duration(rng.IntN(20)) * time.Second) // nearly in order, with ties
		if rng.IntN(4) == 0 {
			e.Verdict = event.VerdictDeny
		}
		if i%61 == 0 {
			e = event.LossReport(map[string]uint64{"ring_full_file": uint64(i), "store_write_error": 1})
			e.Time, e.PID = t0.Add(time.Duration(i)*time.Second), uint32(i)
		}
		all = append(all, e)
		batch = append(batch, e)
		if len(batch) >= 1+rng.IntN(25) || i == n-1 {
			if err := w.Append(batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	return all, w
}

// oracle answers q by filtering every event written, as Matches selects
// live events, and sums the loss reports in q's window.
func oracle(t *testing.T, all []event.Event, q Query) ([]string, map[string]uint64) {
	t.Helper()
	var out []string
	lost := make(map[string]uint64)
	since, until := q.window()
	for i := range all {
		e := &all[i]
		if e.IsLossReport() && e.Time.UnixNano() >= since && e.Time.UnixNano() < until {
			for k, v := range e.Counts {
				lost[k] += v
			}
		}
		if q.Matches(e) {
			line, err := e.MarshalLine()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e.Time.UTC().Format(time.RFC3339Nano)+" "+string(line))
		}
	}
	slices.Sort(out)
	return out, lost
}

func answer(res *Result) []string {
	var out []string
	for _, m := range res.Events {
		out = append(out, m.Time.UTC().Format(time.RFC3339Nano)+" "+string(m.JSON))
	}
	slices.Sort(out)
	return out
}

func oracleQueries() []Query {
	hour := func(a, b int) (time.Time, time.Time) {
		return t0.Add(time.Duration(a) * time.Second), t0.Add(time.Duration(b) * time.Second)
	}
	s1, u1 := hour(100, 400)
	s2, u2 := hour(900, 2000)
	return []Query{
		{},
		{Container: "quiet"},
		{Container: "quiet", Since: s1, Until: u1},
		{Container: "id-we"},
		{Image: "registry.internal/d*", Kinds: []event.Kind{event.KindExec}},
		{Since: s2, Until: u2, Verdicts: []event.Verdict{event.VerdictDeny}},
		{Kinds: []event.Kind{event.KindSensor}},
		{Pod: "pod-db", Since: s2},
		{Container: "nobody"},
	}
}

// TestQueryMatchesOracle checks every query against a filter over the
// events written, with the writer still open, and again with each of the
// things a reader must not depend on taken away or damaged: the catalog,
// the live file, a sealed index's run, an index of the older format.
func TestQueryMatchesOracle(t *testing.T) {
	damages := []struct {
		name   string
		damage func(t *testing.T, dir string, segs []segment)
	}{
		{"as written", func(*testing.T, string, []segment) {}},
		{"no catalog", func(t *testing.T, dir string, _ []segment) { mustRemove(t, filepath.Join(dir, catalogName)) }},
		{"damaged catalog", func(t *testing.T, dir string, _ []segment) { flipByte(t, filepath.Join(dir, catalogName), 20) }},
		{"no live file", func(t *testing.T, _ string, segs []segment) { mustRemove(t, segs[len(segs)-1].Live) }},
		{"live file cut mid-block", func(t *testing.T, _ string, segs []segment) { cutFile(t, segs[len(segs)-1].Live, 7) }},
		{"live file of garbage", func(t *testing.T, _ string, segs []segment) {
			os.WriteFile(segs[len(segs)-1].Live, []byte("not a live file"), 0o600)
		}},
		{"damaged run", func(t *testing.T, _ string, segs []segment) { flipByte(t, segs[1].Idx, int(fileSize(segs[1].Idx))-3) }},
		{"damaged head", func(t *testing.T, _ string, segs []segment) { flipByte(t, segs[2].Idx, 70) }},
		{"index of an older format", func(t *testing.T, dir string, segs []segment) {
			b := readAll(t, segs[3].Idx)
			copy(b, "RFIDX002")
			os.WriteFile(segs[3].Idx, b, 0o600)
		}},
		{"index missing", func(t *testing.T, _ string, segs []segment) { mustRemove(t, segs[4].Idx) }},
	}
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			dir := t.TempDir()
			all, w := oracleStore(t, dir, 1000)
			defer w.Close()
			segs, _ := listSegments(dir)
			if len(segs) < 10 || w.index.count() == 0 {
				t.Fatalf("%d segments, %d events in the active one: the test needs both", len(segs), w.index.count())
			}
			d.damage(t, dir, segs)
			r, err := OpenReader(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for qi, q := range oracleQueries() {
				want, wantLost := oracle(t, all, q)
				res, err := r.Query(q)
				if err != nil {
					t.Fatalf("query %d: %v", qi, err)
				}
				if got := answer(res); !slices.Equal(got, want) {
					t.Fatalf("query %d %+v: %d events, want %d", qi, q, len(got), len(want))
				}
				if fmt.Sprint(res.Lost) != fmt.Sprint(wantLost) {
					t.Fatalf("query %d: lost %v, want %v", qi, res.Lost, wantLost)
				}
			}
		})
	}
}

// TestQueryOpensOnlyCandidateSegments: a query for one container opens the
// index of no segment the catalog says cannot hold it, nor of one outside
// its window, and of the others reads only that container's run.
func TestQueryOpensOnlyCandidateSegments(t *testing.T) {
	dir := t.TempDir()
	all, w := oracleStore(t, dir, 1000)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	holds := make(map[uint64]bool) // segments holding "quiet" in the window
	cat := readCatalog(dir)
	if cat == nil {
		t.Fatal("no catalog after Close")
	}
	since, until := t0.Add(300*time.Second), t0.Add(800*time.Second)
	for first, s := range cat {
		if slices.ContainsFunc(s.ids, func(id uint32) bool { return s.dict[id].Name == "quiet" }) && s.maxTime >= since.UnixNano() && s.minTime < until.UnixNano() {
			holds[first] = true
		}
	}
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Query(Query{Container: "quiet", Since: since, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := oracle(t, all, Query{Container: "quiet", Since: since, Until: until})
	if len(res.Events) != len(want) || len(want) == 0 {
		t.Fatalf("%d events, want %d (and some)", len(res.Events), len(want))
	}
	opened := 0
	for _, v := range r.sealed {
		if v.idx == nil {
			continue
		}
		opened++
		if !holds[v.seg.First] && v.sum.losses == 0 {
			t.Errorf("%s: index opened, but the segment cannot hold the answer", v.seg.Idx)
		}
	}
	if opened == 0 || opened >= len(cat) {
		t.Fatalf("%d of %d indexes opened", opened, len(cat))
	}
}

// TestActiveSegmentFromLiveFile: the segment being written is indexed from
// its live file, plus whatever the log holds past its last entry, and the
// writer rebuilds the live file after a crash.
func TestActiveSegmentFromLiveFile(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := w.Append([]event.Event{ev(2*i, "web", event.KindFile), ev(2*i+1, "db", event.KindExec)}); err != nil {
			t.Fatal(err)
		}
	}
	x := parseLive(readAll(t, w.seg.Live), nil)
	if x == nil || x.count() != 6 || len(x.Syms) != 3 {
		t.Fatalf("live file indexes %v", x)
	}
	// The live file lags a batch behind the log, as a crash between the two writes leaves it.
	cutFile(t, w.seg.Live, liveBlockSize+2*liveEntrySize) // the last block: two records, no new container
	if got := fmt.Sprint(storedPIDs(t, dir)); got != "[0 1 2 3 4 5]" {
		t.Fatalf("with the live file a batch behind: %s", got)
	}
	live := w.seg.Live
	crash(w)
	mustRemove(t, live)
	w, err = OpenWriter(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if x := parseLive(readAll(t, live), nil); x == nil || x.count() != 6 {
		t.Fatalf("live file not rebuilt on open: %v", x)
	}
	if got := fmt.Sprint(storedPIDs(t, dir)); got != "[0 1 2 3 4 5]" {
		t.Fatalf("after reopening: %s", got)
	}
}

// TestLossReportsFromPrefix: the store knows a loss report from its record's
// binary prefix, not from its JSON: the index lists loss reports apart,
// and a sensor event that merely looks like one in JSON is not summed.
func TestLossReportsFromPrefix(t *testing.T) {
	loss := event.LossReport(map[string]uint64{"ring_full_exec": 4})
	loss.Time = t0
	look := event.Event{Time: t0.Add(time.Second), Kind: event.KindSensor, Message: event.LossMessage,
		Container: &event.Container{ID: "c"}, Counts: map[string]uint64{"ring_full_exec": 100}}
	var b batch
	for _, e := range []event.Event{loss, look} {
		line, _ := e.MarshalLine()
		if err := b.add(&e, line); err != nil {
			t.Fatal(err)
		}
	}
	x, n, _ := scan(b.buf)
	if n != 2 || len(x.loss) != 1 || x.loss[0].Off != 0 {
		t.Fatalf("%d records, loss reports %v: want the first only", n, x.loss)
	}
	payload, _, err := readFrame(b.buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	counts, js, err := payloadParts(payload)
	if err != nil || !strings.HasPrefix(string(js), "{") {
		t.Fatalf("parts: %v %q", err, js)
	}
	lost := make(map[string]uint64)
	addCounts(lost, counts)
	if fmt.Sprint(lost) != "map[ring_full_exec:4]" {
		t.Fatalf("counts from the prefix: %v", lost)
	}
}

func mustRemove(tb testing.TB, path string) {
	tb.Helper()
	if err := os.Remove(path); err != nil {
		tb.Fatal(err)
	}
}

// cutFile removes the last n bytes of a file.
func cutFile(tb testing.TB, path string, n int) {
	tb.Helper()
	if err := os.Truncate(path, fileSize(path)-int64(n)); err != nil {
		tb.Fatal(err)
	}
}
