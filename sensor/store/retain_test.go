package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
)

// diskBytes sums the segment files of a store directory.
func diskBytes(tb testing.TB, dir string) int64 {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "seg-*"))
	if err != nil {
		tb.Fatal(err)
	}
	var n int64
	for _, name := range names {
		st, err := os.Stat(name)
		if err != nil {
			tb.Fatal(err)
		}
		n += st.Size()
	}
	return n
}

// TestSizeRetention fills stores well past MaxBytes: after every batch the
// store must be within the limit, and what it keeps must be an unbroken run
// of the newest events, no shorter than the limit less two segments.
func TestSizeRetention(t *testing.T) {
	cases := []struct {
		name      string
		opts      Options
		events    int
		batch     int
		segBytes  int64 // the segment size the store is expected to use
		container string
	}{
		{"small segments", Options{SegmentBytes: 8 << 10, MaxBytes: 40 << 10}, 2000, 7, 8 << 10, "web"},
		{"one batch fills several segments", Options{SegmentBytes: 8 << 10, MaxBytes: 40 << 10}, 2000, 400, 8 << 10, ""},
		// The limit is smaller than a default segment (64 MiB): segments shrink to fit it.
		{"limit below the default segment", Options{MaxBytes: 16 << 20}, 110_000, 4096, 2 << 20, "db"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := OpenWriter(dir, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if w.opts.SegmentBytes != c.segBytes {
				t.Fatalf("segments of %d bytes, want %d", w.opts.SegmentBytes, c.segBytes)
			}
			var batch []event.Event
			for i := 0; i < c.events; i++ {
				batch = append(batch, ev(i, c.container, event.KindFile))
				if len(batch) < c.batch && i < c.events-1 {
					continue
				}
				if err := w.Append(batch); err != nil {
					t.Fatal(err)
				}
				batch = batch[:0]
				disk := diskBytes(t, dir)
				if disk > c.opts.MaxBytes {
					t.Fatalf("after event %d: %d bytes on disk, limit %d", i, disk, c.opts.MaxBytes)
				}
				if st := w.Stats(); st.Bytes != disk {
					t.Fatalf("after event %d: stats say %d bytes, the disk holds %d", i, st.Bytes, disk)
				}
			}
			st := w.Stats()
			if st.Segments < 3 {
				t.Fatalf("%d segments: the test did not exercise retention", st.Segments)
			}
			got := storedPIDs(t, dir)
			if len(got) == 0 || got[len(got)-1] != uint32(c.events-1) {
				t.Fatalf("the newest event is gone: %d kept, %d bytes", len(got), st.Bytes)
			}
			for i := range got {
				if got[i] != got[0]+uint32(i) {
					t.Fatalf("the kept events are not an unbroken run: %d follows %d", got[i], got[i-1])
				}
			}
			if min := c.opts.MaxBytes - 2*c.segBytes; st.Bytes < min {
				t.Fatalf("kept %d bytes: more was thrown away than the limit %d needs (at least %d)", st.Bytes, c.opts.MaxBytes, min)
			}
			t.Logf("%d of %d events kept in %d segments, %d bytes (limit %d)", len(got), c.events, st.Segments, st.Bytes, c.opts.MaxBytes)
		})
	}
}

func TestOptionsRefused(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"negative age", Options{MaxAge: -time.Hour}, "MaxAge -1h0m0s is negative"},
		{"negative size", Options{MaxBytes: -1}, "MaxBytes -1 is negative"},
		{"below two default segments", Options{MaxBytes: MinMaxBytes - 1}, "it must be at least 4194304"},
		{"below two given segments", Options{SegmentBytes: 1 << 20, MaxBytes: 1<<21 - 1}, "cannot hold a sealed segment beside the one being written"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			_, err := OpenWriter(dir, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error saying %q", err, c.want)
			}
		})
	}
	for _, ok := range []Options{{MaxBytes: MinMaxBytes}, {MaxBytes: 1 << 30}, {SegmentBytes: 1 << 20, MaxBytes: 1 << 21}} {
		if err := ok.Check(); err != nil {
			t.Errorf("%+v refused: %v", ok, err)
		}
	}
}

// TestSinkRetainsWhileQuiet checks that the sink runs age retention on its
// own schedule: with no segment sealing, an expired sealed segment goes,
// and so does an active segment whose events have all expired.
func TestSinkRetainsWhileQuiet(t *testing.T) {
	dir := t.TempDir()
	var now atomic.Int64
	now.Store(t0.Add(15 * time.Minute).UnixNano())
	w, err := OpenWriter(dir, Options{SegmentEvents: 10, MaxAge: 30 * time.Minute, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	s := NewSink(w, SinkOptions{Interval: 5 * time.Millisecond, Retain: 10 * time.Millisecond})
	defer s.Close()
	write := func(i int) {
		e := ev(i, "web", event.KindFile)
		line, err := e.MarshalLine()
		if err != nil {
			t.Fatal(err)
		}
		s.Write(&e, line)
	}
	for i := 0; i < 10; i++ { // seals one segment: 10:10:00 to 10:10:09
		write(i + 600)
	}
	write(800) // the active segment: 10:13:20
	waitFor := func(what string, want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := fmt.Sprint(storedPIDs(t, dir))
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: stored %s, want %s", what, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("before expiry", "[600 601 602 603 604 605 606 607 608 609 800]")
	// At 10:41 the limit is 10:11: the sealed segment has expired, the
	// active one's event has not.
	now.Add(int64(26 * time.Minute))
	waitFor("sealed segment expired", "[800]")
	// An hour on, nothing new: the active segment's only event has expired too.
	now.Add(int64(time.Hour))
	waitFor("active segment expired", "[]")
	write(6060) // 11:41, now
	waitFor("after expiry", "[6060]")
}
