// Package sink writes events out of the sensor: JSON lines for any log
// pipeline (Fluent Bit, Vector, a file).
package sink

import (
	"bytes"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
	"golang.org/x/sys/unix"
)

// The causes a JSONLines sink gives, in its own output and in Dropped, for
// the lines it dropped: while its reader was behind, while it yielded to
// the store (see YieldWhile), with a write that failed, and after Close.
const (
	BehindCause     = "stdout_behind"
	YieldCause      = "stdout_yielded"
	WriteErrorCause = "stdout_write_error"
	ClosedCause     = "stdout_closed"
)

// Buffering of a JSONLines sink: lines are gathered in chunks, written
// one chunk per write, and at most maxChunks wait for the reader.
const (
	chunkSize = 64 << 10
	maxChunks = 64 // 4 MiB
)

// JSONLines writes one JSON object per line from a goroutine of its own:
// Write only copies the line into a buffer, so that a slow reader of the
// output (a log collector that cannot keep up) never slows the sensor's
// other sinks, the store first. While the reader is more than 4 MiB behind,
// lines are dropped (cause stdout_behind), and so are routine lines while
// the sink yields to the store (YieldWhile, cause stdout_yielded); they are
// counted (Dropped), and once there is room again the output itself says
// how many, in a loss report line. It is safe for concurrent use; Close
// stops it.
type JSONLines struct {
	w io.Writer

	mu      sync.Mutex
	filling []byte
	full    [][]byte // chunks for the writer, oldest first
	free    [][]byte
	// unreported counts, by cause, the lines dropped since the last
	// loss report in the output.
	unreported map[string]uint64
	closed     bool

	// yield tells whether to drop lines for the store's sake; nil never.
	yield func() bool

	wake chan struct{} // a chunk was queued, or Close was called
	done chan struct{}
	// behind, yielded, writeErrs and late count every line dropped, by
	// cause.
	behind, yielded, writeErrs, late atomic.Uint64
}

// NewJSONLines returns a sink writing to w and starts its writer. Flush
// pushes the lines gathered so far; Close writes what is left and stops.
func NewJSONLines(w io.Writer) *JSONLines {
	if f, ok := w.(*os.File); ok {
		growPipe(f)
	}
	s := &JSONLines{w: w, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go s.run()
	return s
}

// YieldWhile makes the sink drop the lines of routine activity while
// pressed reports true: the sensor's kernel ring is filling, so the daemon
// is short of time for its store, which keeps every event. For a daemon
// with a store only: the lines dropped are counted (Dropped, cause
// stdout_yielded) and told in the output once it takes lines again, or at
// Close. Called before the first Write.
func (s *JSONLines) YieldWhile(pressed func() bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.yield = pressed
}

// yieldable reports whether e is routine activity, which comes in floods
// and may give way to the store: an allowed exec, exit, file write, bind or
// syscall count. Violations, denials, loss reports and the sensor's and
// containers' own events are always written.
func yieldable(e *event.Event) bool {
	switch e.Kind {
	case event.KindExec, event.KindExit, event.KindFile, event.KindBind, event.KindSyscalls:
		return e.Verdict == "" || e.Verdict == event.VerdictAllow
	}
	return false
}

// Write queues one event's line; it never waits for the reader.
func (s *JSONLines) Write(e *event.Event, line []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.late.Add(1)
		return nil
	}
	if s.yield != nil && yieldable(e) && s.yield() {
		s.count(YieldCause, &s.yielded, 1)
		return nil
	}
	if len(s.unreported) > 0 && !s.report(false) {
		s.drop()
		return nil
	}
	if !s.room(len(line) + 1) {
		s.drop()
		return nil
	}
	s.filling = append(append(s.filling, line...), '\n')
	return nil
}

// report puts the loss report of the lines dropped so far in the output,
// if there is room for it, or always (the last line, at Close); s.mu is
// held.
func (s *JSONLines) report(always bool) bool {
	r := event.LossReport(s.unreported)
	r.Time = time.Now()
	line, err := r.AppendLine(nil)
	if err != nil || !(always || s.room(len(line)+1)) {
		return false
	}
	s.filling = append(append(s.filling, line...), '\n')
	s.unreported = nil
	return true
}

// drop counts a line dropped while the reader is behind; s.mu is held.
func (s *JSONLines) drop() { s.count(BehindCause, &s.behind, 1) }

// count counts n lines dropped for cause, in total and until the next
// loss report; s.mu is held.
func (s *JSONLines) count(cause string, total *atomic.Uint64, n uint64) {
	if s.unreported == nil {
		s.unreported = map[string]uint64{}
	}
	s.unreported[cause] += n
	total.Add(n)
}

// room makes room for n bytes in the chunk being filled, handing it to the
// writer when it is full, and reports whether there is; s.mu is held.
func (s *JSONLines) room(n int) bool {
	if s.closed {
		return false
	}
	if len(s.filling)+n <= chunkSize || len(s.filling) == 0 {
		return true
	}
	return s.queue()
}

// queue hands the chunk being filled to the writer, if it may wait; s.mu
// is held.
func (s *JSONLines) queue() bool {
	if len(s.full) >= maxChunks {
		return false
	}
	s.full = append(s.full, s.filling)
	if n := len(s.free); n > 0 {
		s.filling, s.free = s.free[n-1][:0], s.free[:n-1]
	} else {
		s.filling = make([]byte, 0, chunkSize)
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return true
}

// Flush hands the lines gathered so far to the writer, without waiting for
// them to be written.
func (s *JSONLines) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.filling) > 0 && !s.closed {
		s.queue()
	}
	return nil
}

// Dropped reports, by cause, the lines dropped while the reader was
// behind or while the sink yielded to the store, lost to a failed write, or
// written after Close: events the other sinks have, that this one did not
// write.
func (s *JSONLines) Dropped() map[string]uint64 {
	out := map[string]uint64{BehindCause: s.behind.Load()}
	if n := s.yielded.Load(); n > 0 {
		out[YieldCause] = n
	}
	if n := s.writeErrs.Load(); n > 0 {
		out[WriteErrorCause] = n
	}
	if n := s.late.Load(); n > 0 {
		out[ClosedCause] = n
	}
	return out
}

// Close writes what is queued, and a loss report of the lines dropped
// since the last one, and stops the writer. Lines written after Close are
// dropped.
func (s *JSONLines) Close() error {
	s.mu.Lock()
	if !s.closed {
		if len(s.unreported) > 0 {
			s.report(true)
		}
		if len(s.filling) > 0 {
			s.full = append(s.full, s.filling)
			s.filling = nil
		}
		s.closed = true
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
	<-s.done
	return nil
}

// run writes the queued chunks in order until Close.
func (s *JSONLines) run() {
	defer close(s.done)
	for range s.wake {
		for {
			s.mu.Lock()
			if len(s.full) == 0 {
				closed := s.closed
				s.mu.Unlock()
				if closed {
					return
				}
				break
			}
			c := s.full[0]
			s.full = s.full[1:]
			s.mu.Unlock()
			_, err := s.w.Write(c)
			s.mu.Lock()
			if err != nil { // lost with the chunk, and told if the output recovers
				s.count(WriteErrorCause, &s.writeErrs, uint64(bytes.Count(c, []byte{'\n'})))
			}
			s.free = append(s.free, c[:0])
			s.mu.Unlock()
		}
	}
}

// pipeSize is the capacity asked of a pipe the lines go to: the kernel's
// default (64 KiB) wakes the reader and the writer every 64 KiB of lines.
const pipeSize = 1 << 20

// growPipe asks for a larger buffer when f is a pipe; where the kernel
// refuses (pipe-max-size, a user's pipe quota), the pipe stays as it was.
// Through SyscallConn, not Fd, which would make the file blocking.
func growPipe(f *os.File) {
	c, err := f.SyscallConn()
	if err != nil {
		return
	}
	c.Control(func(fd uintptr) {
		var st unix.Stat_t
		if unix.Fstat(int(fd), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			return
		}
		if n, err := unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0); err == nil && n < pipeSize {
			unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize)
		}
	})
}
