package sensor

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/decode"
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

// Yielder is a sink of lesser rank than the store (JSON lines on stdout):
// it drops routine events while pressed reports true, the kernel ring
// filling, so that the time it would take goes to the store. What it drops
// it counts, as a DropReporter. Only a daemon with a store makes it yield.
type Yielder interface {
	YieldWhile(pressed func() bool)
}

// DropReporter is a sink that drops, rather than wait, when its reader
// falls behind or it yields to the store (JSON lines on stdout), and counts
// what it dropped by cause: events the other sinks have, missing from its
// output only.
type DropReporter interface {
	Dropped() map[string]uint64
}

// linger is how long a stage that has caught up with the one before it
// lets work gather before it takes more: at high rates, one wake-up (and
// one kernel notification) per batch instead of per record. It is what an
// event may wait at most at each of the two hand-offs, reader and sinks.
const linger = time.Millisecond

// onRecord runs on the ring reader goroutine: decode, complete a violation,
// park what waits for its container, queue the rest. A full queue makes it
// wait, which leaves records in the ring; if the ring fills, the kernel
// counts each lost record by kind. Nothing is dropped here.
//
// A record younger than linger means the reader has caught up with the
// kernel: it lingers before reading on, so that records gather in the ring
// (a ring holds hundreds of milliseconds of them) and are then read without
// the kernel waking the reader for each.
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
	s.queue.put(&e)
	if ts, ok := decode.BootNs(raw); ok && s.clock.recent(ts) {
		time.Sleep(linger)
	}
}

// bootClock tells the boot time (CLOCK_BOOTTIME) from Go's monotonic
// clock: one reading of both, then no syscall per record. The wall clock
// plays no part, so that a step of it (NTP) cannot make old records look
// young and the reader linger after each. While the machine sleeps the
// monotonic clock stops and the estimate lags: records look younger than
// now and the reader does not linger, which is the safe side.
type bootClock struct {
	at   time.Time     // a monotonic reading
	boot time.Duration // CLOCK_BOOTTIME at that reading
}

// recent reports whether a record written at boot time ts is younger than
// linger. A zero bootClock finds every record old.
func (c bootClock) recent(ts uint64) bool {
	if c.at.IsZero() {
		return false
	}
	now := c.boot + time.Since(c.at)
	return time.Duration(ts) <= now && now-time.Duration(ts) < linger
}

// deliver dispatches the queued events until the queue is closed: the
// sinks' goroutine.
func (s *Sensor) deliver() {
	var batch []event.Event
	var line []byte // one encoding buffer for every event
	for {
		if batch = s.queue.take(batch); batch == nil {
			return
		}
		for i := range batch {
			line = s.dispatch(&batch[i], line)
		}
		if s.queue.empty() {
			// Caught up: let events gather rather than be woken for each.
			time.Sleep(linger)
			if s.queue.empty() {
				s.flush() // idle: push buffered lines out now
			}
		}
	}
}

// dispatch runs on the sinks' goroutine: it names the event's container,
// counts it, encodes it once and hands it to every sink; on the tier where
// the kernel cannot judge file writes, it judges them here. It encodes into
// buf, which may be nil, and returns it for the next event.
func (s *Sensor) dispatch(e *event.Event, buf []byte) []byte {
	if e.Container == nil && e.CgroupID != 0 && s.identity != nil {
		if c, ok := s.identity.Of(e.CgroupID); ok {
			e.Container = c.Ref()
		}
	}
	if e.ObjectCgroupID != 0 {
		s.nameObject(e)
	}
	s.counts.add(e)
	line, err := e.AppendLine(buf[:0])
	if err != nil {
		s.encodeErrs.Add(1) // no JSON: lost, and counted so
		s.cfg.Logger.Error("encode event", "error", err)
		return line
	}
	for _, sk := range s.cfg.Sinks {
		if err := sk.Write(e, line); err != nil {
			s.cfg.Logger.Error("sink write failed", "error", err)
		}
	}
	if v := s.auditFile(e); v != nil {
		line = s.dispatch(v, line)
	}
	return line
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

// auditFile judges a file write where the kernel cannot (cgroup-only
// tier). With no root filesystem registered no write can break a read-only
// rule, and locating the written object (a walk of its path) is skipped.
func (s *Sensor) auditFile(e *event.Event) *event.Event {
	if s.probe.Tier == kernel.TierFull || e.Kind != event.KindFile || !s.engine.HoldsRoots() {
		return nil
	}
	return s.violations.AuditFile(e, s.locate(e), s.containerCgroup(e.CgroupID))
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
	s.dispatch(&e, nil)
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
// Keyed by value, so that counting an event allocates nothing.
type counts struct {
	mu         sync.Mutex
	events     map[eventKey]uint64
	violations map[violationKey]uint64
}

type eventKey struct {
	kind    event.Kind
	verdict event.Verdict
}

type violationKey struct{ policy, rule, mode string }

func newCounts() counts {
	return counts{events: make(map[eventKey]uint64), violations: make(map[violationKey]uint64)}
}

func (c *counts) add(e *event.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events[eventKey{e.Kind, e.Verdict}]++
	if e.Kind == event.KindViolation {
		c.violations[violationKey{e.Policy, e.Rule, e.Mode}] += e.ViolationCount()
	}
}

// snapshot returns both, keyed "kind/verdict" and "policy/rule/mode".
func (c *counts) snapshot() (events, violations map[string]uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	events = make(map[string]uint64, len(c.events))
	for k, n := range c.events {
		events[string(k.kind)+"/"+string(k.verdict)] = n
	}
	violations = make(map[string]uint64, len(c.violations))
	for k, n := range c.violations {
		violations[k.policy+"/"+k.rule+"/"+k.mode] = n
	}
	return events, violations
}
