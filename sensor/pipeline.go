package sensor

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/kernel"
)

// Sink receives every event with its JSON encoding, made once for all
// sinks. Write must keep neither e nor line after it returns.
type Sink interface {
	Write(e *event.Event, line []byte) error
	Flush() error
}

// LossReporter is a sink that can lose events (on write errors, say) and
// counts them by cause; the counts join the sensor's loss accounting.
type LossReporter interface {
	Lost() map[string]uint64
}

// StallReporter is a sink that makes its writers wait when it falls behind,
// and counts the waits.
type StallReporter interface {
	Stalls() map[string]uint64
}

// onRecord runs on the ring reader goroutine: decode, complete a violation,
// park what waits for its container, queue the rest. A full queue makes it
// wait, which leaves records in the ring; if the ring fills, the kernel
// counts each lost record by kind. Nothing is dropped here.
func (s *Sensor) onRecord(raw []byte) {
	e, v, err := s.decoder.Decode(raw)
	if err != nil {
		s.decodeErrs.Add(1)
		s.cfg.Logger.Warn("undecodable record", "error", err)
		return
	}
	if e.Kind == event.KindViolation {
		s.violations.Complete(&e, v)
	}
	if (e.Held || e.Pending) && s.holder != nil && s.holder.Take(e) {
		return
	}
	if e.Held {
		unix.Kill(int(e.PID), unix.SIGCONT) // the sensor is stopping: let it run
	}
	select {
	case s.queue <- e:
	default:
		s.queueStalls.Add(1)
		s.queue <- e
	}
}

// dispatch runs on the sinks' goroutine: it names the event's container,
// counts it, encodes it once and hands it to every sink; on the tier where
// the kernel cannot judge file writes, it judges them here.
func (s *Sensor) dispatch(e *event.Event) {
	if e.Container == nil && e.CgroupID != 0 && s.identity != nil {
		if c, ok := s.identity.Of(e.CgroupID); ok {
			e.Container = c.Ref()
		}
	}
	if e.ObjectCgroupID != 0 {
		s.nameObject(e)
	}
	s.counts.add(e)
	line, err := e.MarshalLine()
	if err != nil {
		s.cfg.Logger.Error("encode event", "error", err)
		return
	}
	for _, sk := range s.cfg.Sinks {
		if err := sk.Write(e, line); err != nil {
			s.cfg.Logger.Error("sink write failed", "error", err)
		}
	}
	if v := s.auditFile(e); v != nil {
		s.dispatch(v)
	}
}

// nameObject names the container whose root filesystem a violation wrote,
// and forgets it when it is the acting process's own.
func (s *Sensor) nameObject(e *event.Event) {
	var c container.Info
	ok := false
	if s.identity != nil {
		c, ok = s.identity.Of(e.ObjectCgroupID)
	}
	switch {
	case ok && e.Container != nil && c.ID == e.Container.ID:
		e.ObjectCgroupID = 0
	case ok:
		e.ObjectContainer = c.Ref()
	}
}

// auditFile judges a file write where the kernel cannot (cgroup-only tier).
func (s *Sensor) auditFile(e *event.Event) *event.Event {
	if s.probe.Tier == kernel.TierFull || e.Kind != event.KindFile {
		return nil
	}
	return s.violations.AuditFile(e, s.locate(e))
}

// mountPoints lists the mount points of the container of cgroup, from its
// OCI spec.
func (s *Sensor) mountPoints(cgroup uint64) []string {
	if s.identity == nil {
		return nil
	}
	c, ok := s.identity.Of(cgroup)
	if !ok || c.Spec == nil {
		return nil
	}
	out := make([]string, 0, len(c.Spec.Mounts))
	for _, m := range c.Spec.Mounts {
		out = append(out, m.Destination)
	}
	return out
}

// emit sends an event the sensor itself produced, bypassing the queue.
func (s *Sensor) emit(e event.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	s.dispatch(&e)
}

// sensorMessage emits a sensor event saying msg.
func (s *Sensor) sensorMessage(msg string) {
	s.emit(event.Event{Kind: event.KindSensor, Verdict: event.VerdictAllow, Message: msg})
}

func (s *Sensor) startEvent() event.Event {
	return event.Event{
		Kind:    event.KindSensor,
		Verdict: event.VerdictAllow,
		Message: fmt.Sprintf("started: tier %s: %s", s.probe.Tier, s.probe.Reason),
	}
}

func (s *Sensor) flush() error {
	var errs []error
	for _, sk := range s.cfg.Sinks {
		errs = append(errs, sk.Flush())
	}
	return errors.Join(errs...)
}

// counts are the events by kind and verdict, and the violations by policy,
// rule and mode, suppressed ones included: the metrics' and status' counts.
type counts struct {
	mu         sync.Mutex
	events     map[string]uint64
	violations map[string]uint64
}

func newCounts() counts {
	return counts{events: make(map[string]uint64), violations: make(map[string]uint64)}
}

func (c *counts) add(e *event.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events[string(e.Kind)+"/"+string(e.Verdict)]++
	if e.Kind == event.KindViolation {
		c.violations[e.Policy+"/"+e.Rule+"/"+e.Mode] += e.ViolationCount()
	}
}

// snapshot returns copies of both.
func (c *counts) snapshot() (events, violations map[string]uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.events), maps.Clone(c.violations)
}
