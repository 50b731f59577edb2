package sensor

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
)

// recordSink keeps the path of every event written to it, and its line.
type recordSink struct {
	mu    sync.Mutex
	paths []string
	lines int
}

func (r *recordSink) Write(e *event.Event, line []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paths = append(r.paths, e.Path)
	if len(line) > 0 {
		r.lines++
	}
	return nil
}

func (r *recordSink) Flush() error { return nil }

// TestPipelineDeliversEveryRecordInOrder: records through the reader's and
// the sinks' stages come out once each, in the ring's order, and closing
// the queue hands over everything queued before deliver returns.
func TestPipelineDeliversEveryRecordInOrder(t *testing.T) {
	rec := &recordSink{}
	s := newTestPipeline(t, rec)
	const n = 50000
	runPipeline(s, fileRecords(n), n)
	if len(rec.paths) != n || rec.lines != n {
		t.Fatalf("%d events (%d lines) delivered of %d", len(rec.paths), rec.lines, n)
	}
	for i, p := range rec.paths {
		if want := fmt.Sprintf("/var/lib/app/data/%06d.db", i); p != want {
			t.Fatalf("event %d is %s, want %s", i, p, want)
		}
	}
	events, _ := s.counts.snapshot()
	if events["file/allow"] != n {
		t.Fatalf("counted %v", events)
	}
	if lost := s.queue.late.Load() + s.decodeErrs.Load() + s.encodeErrs.Load(); lost != 0 {
		t.Fatalf("%d lost", lost)
	}
}

// TestBootClockRecent: a record is recent when it is younger than linger
// by the boot clock; one from the future (the estimate lags after the
// machine slept) or from before is not, nor is any with a zero clock.
func TestBootClockRecent(t *testing.T) {
	boot := 5 * time.Hour
	c := bootClock{at: time.Now(), boot: boot}
	for _, r := range []struct {
		ts   time.Duration
		want bool
	}{
		{boot, true},
		{boot - linger/2, true},
		{boot - 2*linger, false},
		{boot + time.Second, false},
		{0, false},
	} {
		if got := c.recent(uint64(r.ts)); got != r.want {
			t.Errorf("recent(%v) with the clock at %v = %v, want %v", r.ts, boot, got, r.want)
		}
	}
	if (bootClock{}).recent(uint64(boot)) {
		t.Error("a zero clock finds a record recent")
	}
}
