package sink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
	"golang.org/x/sys/unix"
)

func TestJSONLinesFieldNames(t *testing.T) {
	var buf bytes.Buffer
	s := NewJSONLines(&buf)
	code := int32(3)
	events := []event.Event{
		{Time: time.Unix(1, 5).UTC(), Kind: event.KindExec, Verdict: event.VerdictAllow, PID: 7, PPID: 1, CgroupID: 42, Binary: "/bin/sh", Args: []string{"sh", "-c", "<x>"}},
		{Time: time.Unix(2, 0).UTC(), Kind: event.KindExit, ExitCode: &code},
		{Time: time.Unix(3, 0).UTC(), Kind: event.KindBind, Family: "inet", Addr: "0.0.0.0", Port: 80, Proto: "tcp", Container: &event.Container{ID: "c1", Name: "web"}},
		{Time: time.Unix(4, 0).UTC(), Kind: event.KindExit, Signal: 9},
		{Time: time.Unix(5, 0).UTC(), Kind: event.KindSyscalls, Counts: map[string]uint64{"openat": 38, "ia32:5": 1}},
	}
	for i := range events {
		line, err := events[i].MarshalLine()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Write(&events[i], line); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(events) {
		t.Fatalf("%d lines for %d events", len(lines), len(events))
	}
	want := []map[string]any{
		{"time": "1970-01-01T00:00:01.000000005Z", "kind": "exec", "verdict": "allow", "pid": 7.0, "ppid": 1.0, "cgroup_id": 42.0, "binary": "/bin/sh"},
		{"kind": "exit", "exit_code": 3.0},
		{"kind": "bind", "family": "inet", "addr": "0.0.0.0", "port": 80.0, "proto": "tcp", "container": map[string]any{"id": "c1", "name": "web"}},
		{"kind": "exit", "signal": 9.0},
		{"kind": "syscalls", "counts": map[string]any{"openat": 38.0, "ia32:5": 1.0}},
	}
	for i, line := range lines {
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		for k, v := range want[i] {
			gj, _ := json.Marshal(got[k])
			wj, _ := json.Marshal(v)
			if string(gj) != string(wj) {
				t.Errorf("line %d: %s = %s, want %s", i, k, gj, wj)
			}
		}
		if _, ok := got["path"]; ok {
			t.Errorf("line %d: empty fields must be left out: %s", i, line)
		}
	}
	if _, ok := mapOf(t, lines[3])["exit_code"]; ok {
		t.Errorf("a killed process has an exit code: %s", lines[3])
	}
	if !strings.Contains(lines[0], `"<x>"`) {
		t.Errorf("HTML escaping applied: %s", lines[0])
	}
}

func mapOf(t *testing.T, line string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestJSONLinesBuffersUntilFlush: nothing reaches the writer before Flush.
func TestJSONLinesBuffersUntilFlush(t *testing.T) {
	w := &gateWriter{open: make(chan struct{})}
	close(w.open)
	s := NewJSONLines(w)
	defer s.Close()
	e := event.Event{Time: time.Unix(1, 0).UTC(), Kind: event.KindExec}
	line, _ := e.MarshalLine()
	s.Write(&e, line)
	time.Sleep(20 * time.Millisecond) // a writer that wrote early would have by now
	if w.len() != 0 {
		t.Fatal("wrote before Flush: the sink is meant to buffer")
	}
	s.Flush()
	deadline := time.Now().Add(10 * time.Second)
	for w.len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Flush did not write the line")
		}
		time.Sleep(time.Millisecond)
	}
}

// gateWriter holds every write until open is closed.
type gateWriter struct {
	open chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (g *gateWriter) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func (g *gateWriter) len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Len()
}

// TestJSONLinesDropsWhenBehind: with a reader that does not read, Write
// never waits; what does not fit is dropped and counted, and once the
// reader is back the output says how many lines it is missing, where.
func TestJSONLinesDropsWhenBehind(t *testing.T) {
	w := &gateWriter{open: make(chan struct{})}
	s := NewJSONLines(w)
	const n = 40000 // about 8 MiB of lines: twice what may wait
	for i := range n {
		e := event.Event{Time: time.Unix(int64(i), 0).UTC(), Kind: event.KindFile, Path: fmt.Sprintf("/%0180d", i)}
		line, _ := e.MarshalLine()
		s.Write(&e, line)
	}
	dropped := s.Dropped()[BehindCause]
	if dropped == 0 || dropped >= n {
		t.Fatalf("dropped %d of %d lines with the reader stopped", dropped, n)
	}
	// Every line has the same length: wait for the kept ones to be written.
	first := event.Event{Time: time.Unix(0, 0).UTC(), Kind: event.KindFile, Path: fmt.Sprintf("/%0180d", 0)}
	l, _ := first.MarshalLine()
	close(w.open)
	for deadline := time.Now().Add(10 * time.Second); w.len() < (n-int(dropped))*(len(l)+1); {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes written, want the %d lines kept", w.len(), n-int(dropped))
		}
		s.Flush() // the chunk being filled, once there is room for it
		time.Sleep(time.Millisecond)
	}
	last := event.Event{Time: time.Unix(n, 0).UTC(), Kind: event.KindExec, Binary: "/last"}
	line, _ := last.MarshalLine()
	s.Write(&last, line)
	s.Close()

	lines := strings.Split(strings.TrimSpace(w.buf.String()), "\n")
	if len(lines) != n-int(dropped)+2 {
		t.Fatalf("%d lines written, want %d kept + a report + the last", len(lines), n-int(dropped))
	}
	var report event.Event
	if err := json.Unmarshal([]byte(lines[len(lines)-2]), &report); err != nil || !report.IsLossReport() || report.Counts[BehindCause] != dropped {
		t.Fatalf("the line before the last is %s, want a loss report of %d %s", lines[len(lines)-2], dropped, BehindCause)
	}
	if !strings.Contains(lines[len(lines)-1], `"/last"`) {
		t.Fatalf("last line %s", lines[len(lines)-1])
	}
	// The kept lines are the first ones, in order.
	for i, l := range lines[:len(lines)-2] {
		if !strings.Contains(l, fmt.Sprintf("/%0180d", i)) {
			t.Fatalf("line %d is %.60s...", i, l)
		}
	}
}

// failWriter fails its first fails writes, then keeps what it is given.
type failWriter struct {
	mu    sync.Mutex
	fails int
	buf   bytes.Buffer
}

func (f *failWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return 0, fmt.Errorf("broken pipe")
	}
	return f.buf.Write(p)
}

// TestJSONLinesCountsWriteErrorsAndLateLines: the lines of a failed write
// are counted by their own cause and reported in the output once it works
// again; lines written after Close are counted as such.
func TestJSONLinesCountsWriteErrorsAndLateLines(t *testing.T) {
	w := &failWriter{fails: 1}
	s := NewJSONLines(w)
	e := event.Event{Time: time.Unix(1, 0).UTC(), Kind: event.KindExec, Binary: "/a"}
	line, _ := e.MarshalLine()
	for range 3 {
		s.Write(&e, line)
	}
	s.Flush() // written, and failed
	for deadline := time.Now().Add(10 * time.Second); s.Dropped()[WriteErrorCause] == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the failed write was not counted")
		}
	}
	if d := s.Dropped(); d[WriteErrorCause] != 3 || d[BehindCause] != 0 {
		t.Fatalf("dropped %v, want 3 %s", d, WriteErrorCause)
	}
	s.Write(&e, line)
	s.Close()
	s.Write(&e, line)
	if d := s.Dropped(); d[ClosedCause] != 1 || d[WriteErrorCause] != 3 {
		t.Fatalf("dropped %v, want 1 %s and 3 %s", d, ClosedCause, WriteErrorCause)
	}
	lines := strings.Split(strings.TrimSpace(w.buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("output %q: want a loss report and the line after the failure", w.buf.String())
	}
	var report event.Event
	if err := json.Unmarshal([]byte(lines[0]), &report); err != nil || !report.IsLossReport() || report.Counts[WriteErrorCause] != 3 {
		t.Fatalf("first line %s, want a loss report of 3 %s", lines[0], WriteErrorCause)
	}
}

// TestJSONLinesGrowsPipe: a pipe the lines go to is given a larger buffer
// than the kernel's default, and stays usable.
func TestJSONLinesGrowsPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	s := NewJSONLines(w)
	var size int
	c, _ := w.SyscallConn()
	c.Control(func(fd uintptr) { size, err = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0) })
	if err != nil || size < pipeSize {
		t.Fatalf("pipe size %d (%v), want at least %d", size, err, pipeSize)
	}
	e := event.Event{Time: time.Unix(1, 0).UTC(), Kind: event.KindExec}
	line, _ := e.MarshalLine()
	s.Write(&e, line)
	s.Close()
	w.Close()
	got, err := io.ReadAll(r)
	if err != nil || string(got) != string(line)+"\n" {
		t.Fatalf("read %q, %v", got, err)
	}
}

// TestJSONLinesYields: while told to yield, the sink drops the lines of
// routine events, counted under their cause, and writes every other line;
// then it writes again, the first line a loss report of what it dropped;
// what it dropped last is told at Close.
func TestJSONLinesYields(t *testing.T) {
	w := &gateWriter{open: make(chan struct{})}
	close(w.open)
	s := NewJSONLines(w)
	var pressed bool
	s.YieldWhile(func() bool { return pressed })
	write := func(i int) {
		e := event.Event{Time: time.Unix(int64(i), 0).UTC(), Kind: event.KindFile, Path: fmt.Sprintf("/f%d", i)}
		line, _ := e.MarshalLine()
		s.Write(&e, line)
	}
	for i := range 10 {
		pressed = i >= 3 && i < 8
		write(i)
		if i == 4 { // what is never yielded
			v := event.Event{Time: time.Unix(4, 0).UTC(), Kind: event.KindViolation, Verdict: event.VerdictDeny, Path: "/denied"}
			l, _ := v.MarshalLine()
			s.Write(&v, l)
			r := event.LossReport(map[string]uint64{"ring_full_file": 7})
			l, _ = r.AppendLine(nil)
			s.Write(&r, l)
		}
	}
	pressed = true
	write(10) // yielded, and told by Close
	s.Close()
	if d := s.Dropped(); d[YieldCause] != 6 || d[BehindCause] != 0 {
		t.Fatalf("dropped %v, want 6 %s", d, YieldCause)
	}
	// A line written tells first what was dropped before it.
	lines := strings.Split(strings.TrimSpace(w.buf.String()), "\n")
	if len(lines) != 10 {
		t.Fatalf("%d lines, want 3, a report, a violation, the kernel's loss report, a report, 2, a report:\n%s", len(lines), w.buf.String())
	}
	for _, c := range []struct {
		line int
		n    uint64
	}{{4, 2}, {7, 3}, {10, 1}} {
		var report event.Event
		if err := json.Unmarshal([]byte(lines[c.line-1]), &report); err != nil || !report.IsLossReport() || report.Counts[YieldCause] != c.n {
			t.Fatalf("line %d is %s, want a loss report of %d %s", c.line, lines[c.line-1], c.n, YieldCause)
		}
	}
	for i, want := range []string{"/f0", "/f1", "/f2", "", "/denied", "ring_full_file", "", "/f8", "/f9"} {
		if want != "" && !strings.Contains(lines[i], `"`+want+`"`) {
			t.Fatalf("line %d is %s, want %s", i+1, lines[i], want)
		}
	}
}
