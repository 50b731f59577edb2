// Package sink writes events out of the sensor: JSON lines for any log
// pipeline (Fluent Bit, Vector, a file).
package sink

import (
	"bufio"
	"encoding/json"
	"io"
	"sync"

	"github.com/ringfence/ringfence/sensor/event"
)

// JSONLines writes one JSON object per line. It is safe for concurrent use.
type JSONLines struct {
	mu  sync.Mutex
	w   *bufio.Writer
	enc *json.Encoder
}

// NewJSONLines returns a sink writing to w. Call Flush to push buffered lines.
func NewJSONLines(w io.Writer) *JSONLines {
	bw := bufio.NewWriterSize(w, 64*1024)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &JSONLines{w: bw, enc: enc}
}

// Write encodes one event.
func (s *JSONLines) Write(e *event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enc.Encode(e)
}

// Flush writes out buffered lines.
func (s *JSONLines) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Flush()
}
