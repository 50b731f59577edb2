package sensor

import (
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/kernel"
)

// maxParked bounds the events kept per unclassified container.
const maxParked = 4096

// holder ends the holds the kernel puts on new containers: a container's
// first exec waits, stopped before its first instruction, and its earlier
// events (the runtime's setup processes) wait too, until the container is
// known or the timeout passes. Every outcome is counted.
type holder struct {
	kern    *kernel.Sensor
	cache   *container.Cache
	timeout time.Duration
	deliver func(event.Event)
	// connected reports whether the runtime answers; while it does not,
	// containers are named from their cgroup path at once.
	connected func() bool
	cgroup2   string
	// apply puts a classified container under its policies before its
	// hold ends; violation judges its held first exec under them.
	apply     func(info container.Info, pid uint32) (enforce.Member, error)
	violation func(m enforce.Member, e *event.Event) *event.Event

	// classified and timedOut count cgroups; heldExecs counts execs that
	// were stopped before their first instruction and then let go.
	classified, fromPath, timedOut, heldExecs, overflow, runtimeExecs atomic.Uint64
	// recovered counts stopped processes found without their report.
	recovered atomic.Uint64

	mu      sync.Mutex
	cgroups map[uint64][]event.Event // parked events by unclassified cgroup
	stopped bool
	wg      sync.WaitGroup
	quit    chan struct{}
}

func newHolder(kern *kernel.Sensor, cache *container.Cache, timeout time.Duration, deliver func(event.Event), connected func() bool, cgroup2 string) *holder {
	return &holder{kern: kern, cache: cache, timeout: timeout, deliver: deliver, connected: connected, cgroup2: cgroup2,
		cgroups: make(map[uint64][]event.Event), quit: make(chan struct{})}
}

// take parks e until its container is classified, and reports whether it
// did. A held exec is always taken while the holder runs; another event only
// if its container is not known yet.
func (h *holder) take(e event.Event) bool {
	if e.Held && runtimeSelfExec(&e) {
		// The runtime's own setup, not the container's code: it runs on
		// at once, and the cgroup stays held for the entrypoint's exec.
		unix.Kill(int(e.PID), unix.SIGCONT)
		e.Held, e.HoldOutcome = false, "runtime"
		h.runtimeExecs.Add(1)
	}
	if !e.Held {
		if _, ok := h.cache.Lookup(e.CgroupID); ok {
			return false
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return false
	}
	parked, waiting := h.cgroups[e.CgroupID]
	if len(parked) >= maxParked && !e.Held {
		h.overflow.Add(1)
		return false // delivered now, without its container
	}
	h.cgroups[e.CgroupID] = append(parked, e)
	if !waiting {
		h.wg.Add(1)
		go h.wait(e.CgroupID, e.PID)
	}
	return true
}

// adopt takes a stopped process whose exec report never came (see
// recoverHolds): it goes the way of a reported one.
func (h *holder) adopt(e event.Event) {
	h.recovered.Add(1)
	if !h.take(e) {
		unix.Kill(int(e.PID), unix.SIGCONT)
		h.deliver(e)
	}
}

// waiting reports whether a wait for cgroupID is under way.
func (h *holder) waiting(cgroupID uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.cgroups[cgroupID]
	return ok
}

// wait classifies one cgroup, releases its hold and delivers what it parked.
func (h *holder) wait(cgroupID uint64, pid uint32) {
	defer h.wg.Done()
	outcome := h.classify(cgroupID)
	if outcome == "timeout" && h.fromCgroupPath(pid) {
		outcome = "cgroup-path"
	}
	switch outcome {
	case "timeout":
		h.timedOut.Add(1)
	case "cgroup-path":
		h.fromPath.Add(1)
	default:
		h.classified.Add(1)
	}
	// The container's rules are in the kernel before anything of it runs.
	var member enforce.Member
	h.mu.Lock()
	for _, e := range h.cgroups[cgroupID] {
		if e.Held { // the container's own process, in its namespaces
			pid = e.PID
			break
		}
	}
	h.mu.Unlock()
	if info, ok := h.cache.Lookup(cgroupID); ok && h.apply != nil {
		member, _ = h.apply(info, pid) // logged by apply; the hold ends regardless
	}
	// The kernel stops holding first, so nothing after this is stopped.
	h.kern.Release(cgroupID)
	h.mu.Lock()
	parked := h.cgroups[cgroupID]
	delete(h.cgroups, cgroupID)
	h.mu.Unlock()
	for _, e := range parked {
		var v *event.Event
		if e.Held {
			e.Held, e.HoldOutcome = false, outcome
			if h.violation != nil {
				v = h.violation(member, &e)
			}
			if member.ExecAction == enforce.ActionDeny {
				// Nothing may execute: it dies without running an instruction.
				unix.Kill(int(e.PID), unix.SIGKILL)
				e.HoldOutcome = "killed"
			}
			unix.Kill(int(e.PID), unix.SIGCONT)
			h.heldExecs.Add(1)
		}
		h.deliver(e)
		if v != nil {
			h.deliver(*v)
		}
	}
}

// classify waits until the container of cgroupID is known. While the
// runtime is unreachable there is nobody to wait for.
func (h *holder) classify(cgroupID uint64) string {
	deadline := time.Now().Add(h.timeout)
	for {
		if _, ok := h.cache.Lookup(cgroupID); ok {
			return "released"
		}
		if time.Now().After(deadline) || (h.connected != nil && !h.connected()) {
			return "timeout"
		}
		select {
		case <-h.quit:
			return "released"
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// fromCgroupPath names the container of pid from its cgroup path (the id
// only: name = id, no image) when the runtime could not, and caches it so
// the container's later events carry it too.
func (h *holder) fromCgroupPath(pid uint32) bool {
	info, ok, err := container.FallbackForPid(h.cgroup2, "/proc", pid)
	if err != nil || !ok {
		return false
	}
	h.cache.Put(info)
	return true
}

// stop releases every process still held and delivers every parked event.
func (h *holder) stop() {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	close(h.quit)
	h.wg.Wait()
}

func (h *holder) counts() map[string]uint64 {
	return map[string]uint64{"classified": h.classified.Load(), "cgroup_path": h.fromPath.Load(), "timeout": h.timedOut.Load(),
		"held_execs": h.heldExecs.Load(), "parked_overflow": h.overflow.Load(), "runtime_execs": h.runtimeExecs.Load(),
		"recovered": h.recovered.Load()}
}

// runtimeSelfExec reports whether a held exec is runc re-executing itself
// from a sealed copy of its binary ("runc init" run from a descriptor, its
// defence against CVE-2019-5736), which it may do after joining the
// container's cgroup. A container's entrypoint is executed by path, so its
// code cannot pass for this.
func runtimeSelfExec(e *event.Event) bool {
	fromFD := strings.HasPrefix(e.Binary, "/dev/fd/") || strings.HasPrefix(e.Binary, "/proc/self/fd/")
	return fromFD && len(e.Args) >= 2 && path.Base(e.Args[0]) == "runc" && e.Args[1] == "init"
}
