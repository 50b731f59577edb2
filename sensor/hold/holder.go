package hold

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/event"
)

// maxParked bounds the events kept per unclassified container.
const maxParked = 4096

// Kernel is what the holder asks of the kernel programs.
type Kernel interface {
	// Watch makes the kernel report on a cgroup.
	Watch(cgroup uint64) error
	// Release ends the hold on a container cgroup.
	Release(cgroup uint64) error
	// Pending lists the container cgroups not released yet.
	Pending() ([]uint64, error)
}

// Config is what a Holder needs; nothing is read from globals.
type Config struct {
	Kernel Kernel
	// Cache is where the runtime's containers are, by cgroup id.
	Cache *container.Cache
	// Timeout bounds the wait for the runtime to name a container.
	Timeout time.Duration
	// Deliver hands an event on, once it may go (its container known).
	Deliver func(event.Event)
	// Connected reports whether the runtime answers; while it does not,
	// a wait ends at once (named from the cgroup path, else held until
	// the runtime names the container). nil: always.
	Connected func() bool
	// Apply puts a container under its policies; pid is a process of it
	// (its network namespace, when the runtime has not named its init).
	Apply func(info container.Info, pid uint32) (enforce.Member, error)
	// Judge returns the violation of a held first exec under the rules
	// the container now has, or nil.
	Judge func(m enforce.Member, e *event.Event) *event.Event
	// Signal sends sig to a process; unix.Kill when nil. Tests fake it.
	Signal func(pid uint32, sig unix.Signal) error
	// RuntimeExes are the runtime's programs on the host (runc), by file
	// identity, and MemfdDev the device of anonymous memory files: a held
	// exec of one of them (or of a memfd: runc's sealed copy of itself)
	// with "init" is the runtime's own setup, not the container's code.
	RuntimeExes []event.FileID
	MemfdDev    uint32
	// Cgroup2 is the cgroup v2 mount, ProcRoot procfs (/proc when empty).
	Cgroup2, ProcRoot string
	// Parents are the runtime parents, relative to Cgroup2: where
	// containers are looked for at start and when a report was lost.
	Parents []string
	Logger  *slog.Logger
}

// Holder ends holds. Create it with New.
type Holder struct {
	cfg Config
	log *slog.Logger

	// classified, fromPath and timedOut count cgroups; heldExecs counts
	// execs stopped before their first instruction and then let go.
	classified, fromPath, timedOut, heldExecs, overflow, runtimeExecs atomic.Uint64
	// recovered counts stopped processes found without their report;
	// releaseErrors the kernel's refusals to end a hold; applyErrors and
	// watchErrors the containers that could not be put under their
	// policies or watched.
	recovered, releaseErrors, applyErrors, watchErrors atomic.Uint64

	mu        sync.Mutex
	waits     map[uint64]*wait      // by unclassified cgroup
	retry     map[uint64]bool       // cgroups whose release failed, for the next poll
	unapplied map[uint64]*unapplied // held: their policies could not be applied
	stopped   bool
	// leaveHeld: stopped, leaving held processes stopped for the next daemon.
	leaveHeld bool
	wg        sync.WaitGroup
	quit      chan struct{}

	adoption adoption // owned by the goroutine that polls
}

// wait is one unclassified cgroup: what it parked, and how its end is told.
type wait struct {
	parked []event.Event
	// wake is closed once, when the runtime names the container or
	// disconnects; down says which.
	wake  chan struct{}
	woken bool
	down  bool
}

// New returns a Holder.
func New(cfg Config) *Holder {
	if cfg.Signal == nil {
		cfg.Signal = func(pid uint32, sig unix.Signal) error { return unix.Kill(int(pid), sig) }
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Holder{cfg: cfg, log: cfg.Logger, waits: make(map[uint64]*wait), retry: make(map[uint64]bool), unapplied: make(map[uint64]*unapplied),
		quit: make(chan struct{}), adoption: adoption{paths: make(map[uint64]string)}}
}

// Take parks e until its container is classified, and reports whether it
// did. A held exec is always taken while the holder runs; another event only
// if its container is not known yet.
func (h *Holder) Take(e event.Event) bool {
	if e.Held && h.runtimeSelfExec(&e) {
		// The runtime's own setup, not the container's code: it runs on
		// at once, and the cgroup stays held for the entrypoint's exec.
		// (The kernel recognises it too, and then did not hold it.)
		h.cfg.Signal(e.PID, unix.SIGCONT)
		e.Held, e.HoldOutcome = false, event.HoldRuntime
	}
	if e.HoldOutcome == event.HoldRuntime {
		h.runtimeExecs.Add(1)
	}
	if !e.Held {
		if _, ok := h.cfg.Cache.Lookup(e.CgroupID); ok {
			return false
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return false
	}
	w, waiting := h.waits[e.CgroupID]
	if waiting && len(w.parked) >= maxParked && !e.Held {
		h.overflow.Add(1)
		return false // delivered now, without its container
	}
	if !waiting {
		w = &wait{wake: make(chan struct{})}
		h.waits[e.CgroupID] = w
		h.wg.Add(1)
		go h.wait(e.CgroupID, e.PID, w)
	}
	w.parked = append(w.parked, e)
	return true
}

// Known tells the holder that the runtime named a container (it is in the
// cache): a wait for it ends now; a container not held (yet) is watched and
// put under its policies at once.
func (h *Holder) Known(info container.Info) {
	if info.CgroupID == 0 {
		return
	}
	if err := h.cfg.Kernel.Watch(info.CgroupID); err != nil {
		h.watchErrors.Add(1)
		h.log.Error("watch container", "id", info.ID, "error", err)
	}
	h.mu.Lock()
	w, waiting := h.waits[info.CgroupID]
	if waiting {
		w.signal(false)
	}
	h.mu.Unlock()
	if !waiting {
		h.apply(info, info.Pid)
	}
}

// RuntimeDown tells the holder the runtime stopped answering: nothing will
// name the containers waited for, so they are named from their cgroup paths
// now.
func (h *Holder) RuntimeDown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range h.waits {
		w.signal(true)
	}
}

// signal wakes the wait once. Called with the holder's mu held.
func (w *wait) signal(down bool) {
	if !w.woken {
		w.woken, w.down = true, down
		close(w.wake)
	}
}

// waiting reports whether a wait for cgroupID is under way.
func (h *Holder) waiting(cgroupID uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.waits[cgroupID]
	return ok
}

// wait classifies one cgroup, releases its hold and delivers what it parked.
func (h *Holder) wait(cgroupID uint64, pid uint32, w *wait) {
	defer h.wg.Done()
	outcome := h.classify(cgroupID, w)
	if h.leaving() {
		h.abandon(cgroupID, w)
		return
	}
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
	if outcome == "timeout" {
		// Nobody named it: which policies select it is unknown, so it
		// stays held (fail closed) until the runtime names it.
		h.keepHeld(cgroupID, container.Info{}, pid, outcome, w, errUnnamed)
		return
	}
	// The container's rules are in the kernel before anything of it runs.
	h.mu.Lock()
	for _, e := range w.parked {
		if e.Held { // the container's own process, in its namespaces
			pid = e.PID
			break
		}
	}
	h.mu.Unlock()
	h.settle(cgroupID, pid, outcome, w)
}

// leaving reports whether the holder stops, leaving held processes held.
func (h *Holder) leaving() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopped && h.leaveHeld
}

// abandon ends a wait without ending the hold: what was parked is
// delivered but the held execs, whose processes stay stopped for the next
// daemon (which reports them when it finds them).
func (h *Holder) abandon(cgroupID uint64, w *wait) {
	h.mu.Lock()
	parked := w.parked
	delete(h.waits, cgroupID)
	h.mu.Unlock()
	for _, e := range parked {
		if !e.Held {
			h.cfg.Deliver(e)
		}
	}
}

// settle puts a classified container under its policies, ends its hold and
// lets go what it parked. When its policies cannot be applied, it stays
// held (fail closed): its first process stopped, the kernel holding each
// exec, until a poll applies them.
func (h *Holder) settle(cgroupID uint64, pid uint32, outcome string, w *wait) {
	var member enforce.Member
	if info, ok := h.cfg.Cache.Lookup(cgroupID); ok {
		m, err := h.applyErr(info, pid)
		if err != nil {
			h.keepHeld(cgroupID, info, pid, outcome, w, err)
			return
		}
		member = m
	}
	// The kernel stops holding first, so nothing after this is stopped.
	h.release(cgroupID)
	h.mu.Lock()
	parked := w.parked
	delete(h.waits, cgroupID)
	delete(h.unapplied, cgroupID)
	h.mu.Unlock()
	for _, e := range parked {
		h.letGo(e, outcome, member)
	}
}

// unapplied is a container held because its policies could not be applied,
// or could not be chosen: nobody named it (unnamed).
type unapplied struct {
	pid     uint32
	outcome string
	w       *wait
	err     string
	unnamed bool
}

// errUnnamed is why a container nobody named stays held.
var errUnnamed = errors.New("the runtime did not name it within the hold timeout, or is down: the policies that select it are unknown")

// keepHeld keeps a container whose policies could not be applied held, and
// says why: a violation the first time, the status meanwhile.
func (h *Holder) keepHeld(cgroupID uint64, info container.Info, pid uint32, outcome string, w *wait, err error) {
	h.mu.Lock()
	_, again := h.unapplied[cgroupID]
	h.unapplied[cgroupID] = &unapplied{pid: pid, outcome: outcome, w: w, err: err.Error(), unnamed: err == errUnnamed}
	h.mu.Unlock()
	if again {
		return
	}
	v := event.Event{Time: time.Now(), Kind: event.KindViolation, Verdict: event.VerdictDeny, CgroupID: cgroupID,
		PID: pid, Rule: RuleApply, Mode: enforce.ModeEnforce,
		Reason: "its policies could not be applied (" + err.Error() + "): the container stays held before its first instruction until they are"}
	if err == errUnnamed {
		v.Reason = "nobody named the container (" + err.Error() + "): it stays held before its first instruction until the runtime names it"
	} else {
		v.Container = info.Ref()
	}
	h.cfg.Deliver(v)
}

// RuleApply names, in a violation, the failure to put a container under
// its policies.
const RuleApply = "policyApplied"

// retryUnapplied applies again the policies of the containers held for
// want of them; a container whose cgroup is gone is forgotten.
func (h *Holder) retryUnapplied() {
	h.mu.Lock()
	ids := make([]uint64, 0, len(h.unapplied))
	for id := range h.unapplied {
		ids = append(ids, id)
	}
	h.mu.Unlock()
	var pending map[uint64]bool
	for _, id := range ids {
		h.mu.Lock()
		u := h.unapplied[id]
		h.mu.Unlock()
		if u == nil {
			continue
		}
		if _, ok := h.cfg.Cache.Lookup(id); ok {
			h.settle(id, u.pid, u.outcome, u.w)
			continue
		}
		if u.unnamed {
			// Unnamed still: held while its cgroup is (the kernel
			// forgets a pending cgroup when it is removed).
			if pending == nil {
				pending = h.pendingSet()
			}
			if pending[id] {
				continue
			}
		}
		// Gone: what it parked goes on without it.
		h.mu.Lock()
		delete(h.unapplied, id)
		delete(h.waits, id)
		parked := u.w.parked
		h.mu.Unlock()
		for _, e := range parked {
			if !e.Held {
				h.cfg.Deliver(e)
			}
		}
	}
}

// pendingSet returns the cgroups the kernel holds; nil when it cannot say,
// so that nothing is forgotten on a failed read.
func (h *Holder) pendingSet() map[uint64]bool {
	ids, err := h.cfg.Kernel.Pending()
	if err != nil {
		h.log.Error("read pending cgroups", "error", err)
		return nil
	}
	out := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out
}

// Unapplied lists the containers held because their policies could not be
// applied, with why.
func (h *Holder) Unapplied() map[uint64]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[uint64]string, len(h.unapplied))
	for id, u := range h.unapplied {
		out[id] = u.err
	}
	return out
}

// letGo delivers a parked event; a held exec runs on, or dies before its
// first instruction when the container may execute nothing. The exec and
// its violation are handed on before the process runs, so that nothing it
// does afterwards comes before them.
func (h *Holder) letGo(e event.Event, outcome string, member enforce.Member) {
	if !e.Held {
		h.cfg.Deliver(e)
		return
	}
	e.Held, e.HoldOutcome = false, outcome
	var v *event.Event
	if h.cfg.Judge != nil {
		v = h.cfg.Judge(member, &e)
	}
	deny := member.ExecAction == enforce.ActionDeny
	if deny {
		e.HoldOutcome = "killed"
	}
	h.cfg.Deliver(e)
	if v != nil {
		h.cfg.Deliver(*v)
	}
	if deny {
		h.cfg.Signal(e.PID, unix.SIGKILL)
	}
	h.cfg.Signal(e.PID, unix.SIGCONT)
	h.heldExecs.Add(1)
}

// apply puts a container under its policies, logging a failure.
func (h *Holder) apply(info container.Info, pid uint32) enforce.Member {
	m, _ := h.applyErr(info, pid)
	return m
}

// applyErr is apply, returning the failure.
func (h *Holder) applyErr(info container.Info, pid uint32) (enforce.Member, error) {
	if h.cfg.Apply == nil {
		return enforce.Member{}, nil
	}
	m, err := h.cfg.Apply(info, pid)
	if err != nil {
		h.applyErrors.Add(1)
		h.log.Error("apply policy", "container", info.ID, "error", err)
	}
	return m, err
}

// release ends the kernel's hold on a cgroup. A refusal leaves the cgroup
// held: it is counted, logged, and tried again at the next poll.
func (h *Holder) release(cgroupID uint64) {
	err := h.cfg.Kernel.Release(cgroupID)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.retry, cgroupID)
		return
	}
	h.releaseErrors.Add(1)
	h.retry[cgroupID] = true
	h.log.Error("end the hold on a container cgroup; retried at the next poll", "cgroup", cgroupID, "error", err)
}

// retryReleases tries again the releases the kernel refused.
func (h *Holder) retryReleases() {
	h.mu.Lock()
	ids := make([]uint64, 0, len(h.retry))
	for id := range h.retry {
		ids = append(ids, id)
	}
	h.mu.Unlock()
	for _, id := range ids {
		h.release(id)
	}
}

// classify waits until the container of cgroupID is known. While the
// runtime is unreachable there is nobody to wait for.
func (h *Holder) classify(cgroupID uint64, w *wait) string {
	if _, ok := h.cfg.Cache.Lookup(cgroupID); ok {
		return "released"
	}
	if h.cfg.Connected != nil && !h.cfg.Connected() {
		return "timeout"
	}
	t := time.NewTimer(h.cfg.Timeout)
	defer t.Stop()
	select {
	case <-h.quit:
		return "released"
	case <-t.C:
		return "timeout"
	case <-w.wake:
		h.mu.Lock()
		down := w.down
		h.mu.Unlock()
		if _, ok := h.cfg.Cache.Lookup(cgroupID); ok || !down {
			return "released"
		}
		return "timeout"
	}
}

// fromCgroupPath names the container of pid from its cgroup path (the id
// only: name = id, no image) when the runtime could not, and caches it so
// the container's later events carry it too.
func (h *Holder) fromCgroupPath(pid uint32) bool {
	info, ok, err := container.FallbackForPid(h.cfg.Cgroup2, h.cfg.ProcRoot, pid)
	if err != nil || !ok {
		return false
	}
	h.cfg.Cache.Put(info)
	return true
}

// Stop ends every wait and delivers what was parked. With letGo, every
// process still held runs on (nobody is left to let it go); without, held
// processes stay stopped, their hold kept by the kernel for the next
// daemon, which finds them (their exec is not reported here). Calling it
// again does nothing more.
func (h *Holder) Stop(letGo bool) {
	h.mu.Lock()
	if !h.stopped {
		h.stopped, h.leaveHeld = true, !letGo
		close(h.quit)
	}
	h.mu.Unlock()
	h.wg.Wait()
	h.mu.Lock()
	held := h.unapplied
	h.unapplied = make(map[uint64]*unapplied)
	for id := range held {
		delete(h.waits, id)
	}
	h.mu.Unlock()
	for _, u := range held {
		for _, e := range u.w.parked {
			if letGo || !e.Held {
				h.letGo(e, u.outcome, enforce.Member{})
			}
		}
	}
}

// Counts returns the holds by outcome, for the status.
func (h *Holder) Counts() map[string]uint64 {
	return map[string]uint64{"classified": h.classified.Load(), "cgroup_path": h.fromPath.Load(), "timeout": h.timedOut.Load(),
		"held_execs": h.heldExecs.Load(), "parked_overflow": h.overflow.Load(), "runtime_execs": h.runtimeExecs.Load(),
		"recovered": h.recovered.Load(), "release_errors": h.releaseErrors.Load(), "apply_errors": h.applyErrors.Load(),
		"watch_errors": h.watchErrors.Load()}
}
