package api

import (
	"sync"

	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/store"
)

// Hub fans live events out to stream subscribers. It is a sensor sink: a
// slow subscriber never slows the sensor; what it misses is counted and
// told to it.
type Hub struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	q       store.Query
	ch      chan []byte
	mu      sync.Mutex
	dropped uint64
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: make(map[*subscriber]struct{})} }

// Write offers the event's line to every subscriber whose query matches
// it. A loss report goes to every subscriber, whatever its query: a
// follower of one container must still learn that events went missing.
func (h *Hub) Write(e *event.Event, line []byte) error {
	loss := e.IsLossReport()
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if !loss && !s.q.Matches(e) {
			continue
		}
		select {
		case s.ch <- append([]byte(nil), line...):
		default:
			s.mu.Lock()
			s.dropped++
			s.mu.Unlock()
		}
	}
	return nil
}

// Flush implements the sensor's sink interface; the hub holds nothing back.
func (h *Hub) Flush() error { return nil }

func (h *Hub) subscribe(q store.Query) *subscriber {
	s := &subscriber{q: q, ch: make(chan []byte, 4096)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *Hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// takeDropped returns and resets the subscriber's count of missed events.
func (s *subscriber) takeDropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.dropped
	s.dropped = 0
	return n
}
