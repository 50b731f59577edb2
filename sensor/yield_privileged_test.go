package sensor

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/sink"
	"github.com/ringfence/ringfence/sensor/store"
)

// gateSink makes the sinks' stage wait at a file event, as a store that
// fell behind does, until open is closed.
type gateSink struct {
	open chan struct{}
	once sync.Once
}

func (g *gateSink) Write(e *event.Event, _ []byte) error {
	if e.Kind == event.KindFile {
		<-g.open
	}
	return nil
}
func (g *gateSink) Flush() error { return nil }
func (g *gateSink) release()     { g.once.Do(func() { close(g.open) }) }

// lockedBuffer is stdout: written by the JSON lines sink, read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPrivilegedStdoutYieldsToTheStore: while the kernel ring is filling
// (the sinks' stage held back, the reader's queue full), JSON lines of
// routine events on stdout are dropped, counted and told in the output, the
// store keeps every event, and once the ring has drained stdout takes lines
// again.
func TestPrivilegedStdoutYieldsToTheStore(t *testing.T) {
	gate := &gateSink{open: make(chan struct{})}
	var out lockedBuffer
	lines := sink.NewJSONLines(&out)
	w, err := store.OpenWriter(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewSink(w, store.SinkOptions{})
	// Closed after the sensor has stopped: cleanups run last first.
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	const ringBytes = 256 << 10
	h := newHarnessWith(t, Config{RingBytes: ringBytes, QueueLen: 16, Sinks: []Sink{gate, lines}, Store: st})
	t.Cleanup(gate.release) // before the sensor's stop, which waits for its sinks
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A file record is about 120 bytes and its path: the burst fills
	// between a third and two thirds of the ring, past the quarter that
	// presses it and short of losing any.
	burst := ringBytes / 2 / (120 + len(f))
	startHelper(t, h.cgroupFD, "open-write-loop", f, strconv.Itoa(burst)).stop()
	time.Sleep(200 * time.Millisecond) // the burst waits in the ring, behind the held sinks
	gate.release()

	opens := func() int {
		n := 0
		for _, e := range h.rec.all() {
			if e.Kind == event.KindFile && e.Path == f && e.Op == "open" {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); opens() < burst; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d file events reached the sinks", opens(), burst)
		}
	}
	lost, err := h.s.Lost()
	if err != nil {
		t.Fatal(err)
	}
	for cause, n := range lost {
		if n != 0 {
			t.Fatalf("%d events lost (%s): the ring was to hold the burst", n, cause)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); st.Stats().Events < uint64(burst); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the store holds %d events, want the burst's %d at least", st.Stats().Events, burst)
		}
	}
	yielded := lines.Dropped()[sink.YieldCause]
	if yielded == 0 {
		t.Fatalf("stdout yielded none of %d lines, the ring having filled past a quarter", burst)
	}
	if h.s.ring.Pressed() {
		t.Fatal("the ring is drained but still counts as pressed")
	}

	// Drained: stdout writes again, after a line telling what it missed.
	last := filepath.Join(t.TempDir(), "last")
	startHelper(t, h.cgroupFD, "mkdir", last).stop()
	h.rec.waitFor(t, "mkdir", func(e *event.Event) bool { return e.Kind == event.KindFile && e.Path == last })
	var got []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		lines.Flush()
		got = strings.Split(strings.TrimSpace(out.String()), "\n")
		if slices.ContainsFunc(got, func(l string) bool {
			return strings.Contains(l, `"kind":"file"`) && strings.Contains(l, last)
		}) || time.Now().After(deadline) {
			break
		}
	}
	// Every line of the burst was written or yielded (the count also holds
	// the syscall counts yielded meanwhile), and the reports before the
	// mkdir's line tell every line yielded.
	written, reported, mkdir := 0, uint64(0), -1
	for i, l := range got {
		var e event.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("stdout line %q: %v", l, err)
		}
		switch {
		case e.IsLossReport():
			reported += e.Counts[sink.YieldCause]
		case e.Kind == event.KindFile && e.Path == f && e.Op == "open":
			written++
		case e.Kind == event.KindFile && e.Path == last:
			mkdir = i
		}
		if mkdir >= 0 {
			break
		}
	}
	if mkdir < 0 || reported != yielded || written >= burst || written+int(yielded) < burst {
		t.Fatalf("stdout wrote %d of the burst's %d lines and yielded %d lines, of which its reports before the mkdir (line %d) tell %d",
			written, burst, yielded, mkdir+1, reported)
	}
	t.Logf("stdout wrote %d of the burst's %d lines and yielded %d", written, burst, yielded)
}
