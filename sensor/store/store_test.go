package store

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func ev(i int, ctr string, kind event.Kind) event.Event {
	e := event.Event{Time: t0.Add(time.Duration(i) * time.Second), Kind: kind, Verdict: event.VerdictAllow, PID: uint32(i), Path: fmt.Sprintf("/f/%d", i)}
	if ctr != "" {
		e.Container = &event.Container{ID: "id-" + ctr, Name: ctr, Image: "registry.internal/" + ctr + ":1", Pod: "pod-" + ctr, PodNamespace: "prod"}
	}
	return e
}

func pids(tb testing.TB, res *Result) []uint32 {
	tb.Helper()
	var out []uint32
	for _, m := range res.Events {
		var e event.Event
		if err := json.Unmarshal(m.JSON, &e); err != nil {
			tb.Fatalf("stored JSON: %v: %q", err, m.JSON)
		}
		out = append(out, e.PID)
	}
	return out
}

// storedPIDs opens a reader on dir and returns the pids of every event it
// holds, oldest first.
func storedPIDs(tb testing.TB, dir string) []uint32 {
	tb.Helper()
	r, err := OpenReader(dir)
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	res, err := r.Query(Query{})
	if err != nil {
		tb.Fatal(err)
	}
	return pids(tb, res)
}

func TestAppendQuery(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(dir, Options{SegmentEvents: 40})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var batch []event.Event
	for i := 0; i < 100; i++ {
		ctr := []string{"web", "db", ""}[i%3]
		kind := event.KindFile
		if i%5 == 0 {
			kind = event.KindExec
		}
		batch = append(batch, ev(i, ctr, kind))
		if len(batch) == 10 {
			if err := w.Append(batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if st := w.Stats(); st.Segments != 3 || st.Events != 100 {
		t.Fatalf("stats %+v, want 3 segments (two sealed at 40 events) and 100 events", st)
	}
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cases := []struct {
		name string
		q    Query
		want []uint32
	}{
		{"window, one container", Query{Container: "web", Since: t0.Add(30 * time.Second), Until: t0.Add(50 * time.Second)}, []uint32{30, 33, 36, 39, 42, 45, 48}},
		{"id prefix", Query{Container: "id-db", Since: t0.Add(90 * time.Second)}, []uint32{91, 94, 97}},
		{"pod and kind", Query{Pod: "pod-web", Kinds: []event.Kind{event.KindExec}}, []uint32{0, 15, 30, 45, 60, 75, 90}},
		{"image glob", Query{Image: "registry.internal/db*", Until: t0.Add(10 * time.Second)}, []uint32{1, 4, 7}},
		{"limit", Query{PodNamespace: "prod", Limit: 3}, []uint32{0, 1, 3}},
		{"verdict none", Query{Verdicts: []event.Verdict{event.VerdictDeny}}, nil},
		{"host events across segments", Query{Since: t0.Add(35 * time.Second), Until: t0.Add(45 * time.Second), Kinds: []event.Kind{event.KindFile}}, []uint32{36, 37, 38, 39, 41, 42, 43, 44}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := r.Query(c.q)
			if err != nil {
				t.Fatal(err)
			}
			got := pids(t, res)
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

// TestTornTailAndMissingIndex simulates a crash: garbage after the last
// complete record of the active segment, and a sealed segment whose index
// was never written.
func TestTornTailAndMissingIndex(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(dir, Options{SegmentEvents: 5})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		if err := w.Append([]event.Event{ev(i, "web", event.KindFile)}); err != nil {
			t.Fatal(err)
		}
	}
	crash(w)
	segs, _ := listSegments(dir)
	if len(segs) != 2 {
		t.Fatalf("%d segments", len(segs))
	}
	if err := os.Remove(segs[0].Idx); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(segs[1].Log, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 5, 6})
	f.Close()

	w, err = OpenWriter(dir, Options{SegmentEvents: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]event.Event{ev(8, "web", event.KindFile)}); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := os.Stat(segs[0].Idx); err != nil {
		t.Fatalf("index not rebuilt: %v", err)
	}
	if st, _ := os.Stat(segs[1].Log); w.size != st.Size() {
		t.Fatalf("torn tail kept: file %d bytes, writer at %d", st.Size(), w.size)
	}
	r, _ := OpenReader(dir)
	defer r.Close()
	res, err := r.Query(Query{Container: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(pids(t, res)); got != "[0 1 2 3 4 5 6 7 8]" {
		t.Fatalf("after recovery: %s", got)
	}
}

func TestSecondWriterRefused(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := OpenWriter(dir, Options{}); err == nil {
		t.Fatal("two writers on one store")
	}
}

func TestAgeRetention(t *testing.T) {
	dir := t.TempDir()
	now := t0.Add(time.Hour)
	w, err := OpenWriter(dir, Options{SegmentEvents: 10, MaxAge: 30 * time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// 10 events 50 min old, then 10 fresh: the old segment goes at the second seal.
	var old, fresh []event.Event
	for i := 0; i < 10; i++ {
		old = append(old, ev(i+600, "a", event.KindFile))
		fresh = append(fresh, ev(i+3500, "a", event.KindFile))
	}
	if err := w.Append(old); err != nil {
		t.Fatal(err)
	}
	if err := w.Append(fresh); err != nil {
		t.Fatal(err)
	}
	r, _ := OpenReader(dir)
	defer r.Close()
	res, _ := r.Query(Query{})
	if len(res.Events) != 10 || pids(t, res)[0] != 3500 {
		t.Fatalf("after age retention: %v", pids(t, res))
	}
}

func TestLostReportedForWindow(t *testing.T) {
	dir := t.TempDir()
	w, _ := OpenWriter(dir, Options{})
	defer w.Close()
	lost := event.Event{Time: t0.Add(5 * time.Second), Kind: event.KindSensor, Message: event.LossMessage, Counts: map[string]uint64{"ring_full_file": 7}}
	w.Append([]event.Event{ev(1, "web", event.KindFile), lost, ev(9, "web", event.KindFile)})
	r, _ := OpenReader(dir)
	defer r.Close()
	in, _ := r.Query(Query{Container: "web", Until: t0.Add(6 * time.Second)})
	out, _ := r.Query(Query{Container: "web", Since: t0.Add(6 * time.Second)})
	if in.Lost["ring_full_file"] != 7 || len(out.Lost) != 0 {
		t.Fatalf("lost in window %v, after %v", in.Lost, out.Lost)
	}
}

func TestCorruptIndexRejected(t *testing.T) {
	x := newSegIndex()
	x.add(metaOf(&event.Event{Time: t0, Kind: event.KindExec}), 0)
	web := ev(1, "web", event.KindFile)
	x.add(metaOf(&web), 100)
	loss := event.LossReport(map[string]uint64{"ring_full_file": 2})
	loss.Time = t0.Add(time.Second)
	x.add(metaOf(&loss), 200)
	x.seal()
	b := x.marshal()
	if back, err := unmarshalIndex(b); err != nil || sameIndex(back, x) != nil || back.count() != 3 {
		t.Fatalf("round trip: %v, %v", err, sameIndex(back, x))
	}
	for _, cut := range []int{0, 5, len(b) / 2, len(b) - 1} {
		if _, err := unmarshalIndex(b[:cut]); err == nil {
			t.Errorf("index cut at %d accepted", cut)
		}
	}
	// Every byte is covered by a checksum or a size check.
	for i := range b {
		flipped := slices.Clone(b)
		flipped[i] ^= 0x40
		if _, err := unmarshalIndex(flipped); err == nil {
			t.Errorf("byte %d of %d flipped, accepted", i, len(b))
		}
	}
	old := slices.Clone(b)
	copy(old, "RFIDX002")
	if _, err := unmarshalIndex(old); err == nil || !strings.Contains(err.Error(), `format "RFIDX002"`) {
		t.Errorf("an index of the older format: %v", err)
	}
}

// crash abandons a writer as kill -9 would: no final sync, no sealing.
func crash(w *Writer) {
	w.f.Close()
	w.lock.Close()
	w.f, w.lock = nil, nil
}

func TestCleanCloseSealsAndReopenContinues(t *testing.T) {
	dir := t.TempDir()
	w, _ := OpenWriter(dir, Options{})
	w.Append([]event.Event{ev(1, "web", event.KindFile), ev(2, "web", event.KindFile)})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := listSegments(dir)
	if len(segs) != 1 {
		t.Fatalf("%d segments", len(segs))
	}
	if _, err := os.Stat(segs[0].Idx); err != nil {
		t.Fatalf("close did not seal: %v", err)
	}
	w, err := OpenWriter(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Append([]event.Event{ev(3, "web", event.KindFile)})
	if st := w.Stats(); st.Events != 3 || st.Segments != 2 {
		t.Fatalf("after reopen: %+v", st)
	}
	w.Close()
	r, _ := OpenReader(dir)
	defer r.Close()
	res, _ := r.Query(Query{Container: "web"})
	if got := fmt.Sprint(pids(t, res)); got != "[1 2 3]" {
		t.Fatalf("after reopen: %s", got)
	}
	// A writer that stored nothing leaves no empty segment behind.
	w, _ = OpenWriter(dir, Options{})
	w.Close()
	if segs, _ := listSegments(dir); len(segs) != 2 {
		t.Fatalf("%d segments after an empty session", len(segs))
	}
}

func TestVerify(t *testing.T) {
	cases := []struct {
		name   string
		damage func(tb testing.TB, segs []segment)
		want   string // in the first segment's error; empty: valid
	}{
		{"intact", func(testing.TB, []segment) {}, ""},
		{"index byte flipped", func(tb testing.TB, segs []segment) { flipByte(tb, segs[0].Idx, 40) }, "damaged index"},
		{"log byte flipped", func(tb testing.TB, segs []segment) { flipByte(tb, segs[0].Log, 30) }, "a damaged record at offset 0"},
		{"index missing", func(tb testing.TB, segs []segment) { os.Remove(segs[0].Idx) }, "no such file"},
		{"index of another log", func(tb testing.TB, segs []segment) {
			x, _, _ := scan(readAll(tb, segs[2].Log)) // the active segment's 3 records
			x.seal()
			if err := writeIndex(segs[0].Idx, x); err != nil {
				tb.Fatal(err)
			}
		}, "the index lists 3 records, the log holds 5"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := OpenWriter(dir, Options{SegmentEvents: 5})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 13; i++ { // two sealed segments of 5, the active one holds 3
				if err := w.Append([]event.Event{ev(i, []string{"web", "db", ""}[i%3], event.KindFile)}); err != nil {
					t.Fatal(err)
				}
			}
			crash(w)
			segs, _ := listSegments(dir)
			if len(segs) != 3 {
				t.Fatalf("%d segments", len(segs))
			}
			c.damage(t, segs)
			checks, err := Verify(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(checks) != 2 || checks[1].Err != nil || checks[1].Events != 5 {
				t.Fatalf("checks %+v: want two sealed segments, the second intact with 5 events", checks)
			}
			got := checks[0].Err
			if c.want == "" {
				if got != nil || checks[0].Events != 5 {
					t.Fatalf("intact segment: %v, %d events", got, checks[0].Events)
				}
				return
			}
			if got == nil || !strings.Contains(got.Error(), c.want) {
				t.Fatalf("got %v, want an error saying %q", got, c.want)
			}
		})
	}
}

func readAll(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func flipByte(tb testing.TB, path string, off int) {
	tb.Helper()
	b := readAll(tb, path)
	b[off] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// TestSinkRefusesAlone: an event too large for a record is refused and
// counted, and the events around it are stored, in order; after Close,
// writes are refused and counted too.
func TestSinkRefusesAlone(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := NewSink(w, SinkOptions{Batch: 3, Queue: 6})
	write := func(e event.Event) error {
		line, err := e.MarshalLine()
		if err != nil {
			t.Fatal(err)
		}
		return s.Write(&e, line)
	}
	for i := 0; i < 10; i++ {
		e := ev(i, "web", event.KindFile)
		if i == 4 {
			e.Path = strings.Repeat("x", maxPayload)
			if err := write(e); err == nil || !strings.Contains(err.Error(), "larger than a record may be") {
				t.Fatalf("oversized event: %v", err)
			}
			continue
		}
		if err := write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := write(ev(10, "web", event.KindFile)); err == nil {
		t.Fatal("write after Close accepted")
	}
	if lost := s.Lost()["store_write_error"]; lost != 2 {
		t.Fatalf("store_write_error %d, want 2 (the oversized event, the late one)", lost)
	}
	if got := fmt.Sprint(storedPIDs(t, dir)); got != "[0 1 2 3 5 6 7 8 9]" {
		t.Fatalf("stored %s", got)
	}
}
