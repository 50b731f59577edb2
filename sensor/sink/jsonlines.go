// Package sink writes events out of the sensor: JSON lines for any log
// pipeline (Fluent Bit, Vector, a file).
package sink

import (
	"bufio"
	"io"
	"sync"

	"github.com/ringfence/ringfence/sensor/event"
)

// JSONLines writes one JSON object per line. It is safe for concurrent use.
type JSONLines struct {
	mu sync.Mutex
	w  *bufio.Writer
}

// NewJSONLines returns a sink writing to w. Call Flush to push buffered lines.
func NewJSONLines(w io.Writer) *JSONLines {
	return &JSONLines{w: bufio.NewWriterSize(w, 64*1024)}
}

// Write writes one event's line.
func (s *JSONLines) Write(_ *event.Event, line []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w.Write(line)
	return s.w.WriteByte('\n')
}

// Flush writes out buffered lines.
func (s *JSONLines) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Flush()
}
