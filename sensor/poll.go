package sensor

import (
	"errors"
	"maps"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/kernel"
)

// poller is what the polls remember between them. Owned by the goroutine
// that polls, but for syscallKeys, which the status reads.
type poller struct {
	lastSys     map[kernel.SyscallKey]uint64
	lastLost    map[string]uint64
	syscallKeys atomic.Int64 // syscall counters in the kernel map after the last poll
	sweptGen    uint64
	sweptAt     time.Time
}

func newPoller() poller {
	return poller{lastSys: make(map[kernel.SyscallKey]uint64), lastLost: make(map[string]uint64)}
}

// poll reads the counters, reports what changed, and keeps the kernel's
// view of containers and policies current.
func (s *Sensor) poll() {
	// Looked at before anything else: a drain now covers the reports of
	// the processes the hold stage found stopped at earlier polls.
	drained := s.ring.Drained()
	s.pollLost()
	defer s.flush()
	watched, werr := s.watchedSet()
	if werr != nil {
		s.cfg.Logger.Error("read watched cgroups", "error", werr)
	}
	s.pollSyscalls(watched)
	s.pollSuppressed()
	s.policies.ReloadIfChanged()
	s.pollSweep()
	if s.holder != nil {
		if watched != nil {
			s.identity.Forget(watched)
		}
		s.parents.Register()
		s.holder.Poll(drained)
		s.retireGone()
	}
}

// pollLost reports the losses since the last poll.
func (s *Sensor) pollLost() {
	lost, err := s.Lost()
	if err != nil {
		s.cfg.Logger.Error("read loss counters", "error", err)
		return
	}
	if delta := diff(lost, s.poller.lastLost); len(delta) > 0 {
		s.poller.lastLost = lost
		s.emit(event.LossReport(delta))
		// Recorded with the pins: the next daemon reports from here.
		if err := s.kern.SetDropsReported(lost); err != nil {
			s.cfg.Logger.Error("record the losses reported", "error", err)
		}
	}
}

// sweepInterval is how often what no container needs is swept from the
// kernel maps, besides after each new policy set.
const sweepInterval = time.Minute

// pollSweep sweeps the kernel maps of what no container needs any more
// (the policies of an earlier set or an earlier daemon, once no container
// is under them), and records the generation in force with the pins.
func (s *Sensor) pollSweep() {
	gen := s.engine.Status().Generation
	if gen == s.poller.sweptGen && time.Since(s.poller.sweptAt) < sweepInterval {
		return
	}
	if err := s.engine.Quiesced(s.kern.Sweep); err != nil {
		s.cfg.Logger.Error("sweep the kernel maps", "error", err)
	}
	if err := s.kern.SetGeneration(gen); err != nil {
		s.cfg.Logger.Error("record the policy generation with the pins", "error", err)
	}
	s.poller.sweptGen, s.poller.sweptAt = gen, time.Now()
}

// Lost returns every loss counter: the kernel's by cause, undecodable
// records, and what sinks report.
func (s *Sensor) Lost() (map[string]uint64, error) {
	lost, err := s.kern.Drops()
	if err != nil {
		return nil, err
	}
	lost["undecodable"] = s.decodeErrs.Load()
	if n := s.encodeErrs.Load(); n > 0 {
		lost["unencodable"] = n
	}
	if n := s.queue.late.Load(); n > 0 {
		lost["queue_closed"] = n
	}
	for _, sk := range s.cfg.Sinks {
		if lr, ok := sk.(LossReporter); ok {
			for k, v := range lr.Lost() {
				lost[k] += v
			}
		}
	}
	return lost, nil
}

// Stalls counts, by stage, the times a stage waited for the next one:
// "ring" the times the kernel ring was found three quarters full (the
// reader behind, every overflow is preceded by one), "reader_queue" the
// times the reader waited for the sinks, and each sink's own.
func (s *Sensor) Stalls() map[string]uint64 {
	out := map[string]uint64{"ring": s.ring.Backlogs(), "reader_queue": s.queue.stalls.Load()}
	for _, sk := range s.cfg.Sinks {
		if sr, ok := sk.(StallReporter); ok {
			maps.Copy(out, sr.Stalls())
		}
	}
	return out
}

// SinkDropped counts, by cause, the events a sink dropped that the others
// wrote (see DropReporter).
func (s *Sensor) SinkDropped() map[string]uint64 {
	out := map[string]uint64{}
	for _, sk := range s.cfg.Sinks {
		if dr, ok := sk.(DropReporter); ok {
			for k, v := range dr.Dropped() {
				out[k] += v
			}
		}
	}
	return out
}

// watchedSet returns the watched cgroups as a set.
func (s *Sensor) watchedSet() (map[uint64]bool, error) {
	ids, err := s.kern.Watched()
	if err != nil {
		return nil, err
	}
	watched := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		watched[id] = true
	}
	return watched, nil
}

// retireGone marks gone the containers whose cgroup no longer exists and
// takes them off their policies: those named from the cgroup path, which no
// runtime event will retire, and any other the runtime has not reported
// gone yet.
func (s *Sensor) retireGone() {
	for _, c := range s.cfg.Containers.List() {
		if c.Gone() || c.CgroupPath == "" || c.CgroupID == 0 {
			continue
		}
		var st unix.Stat_t
		err := unix.Stat(filepath.Join(s.probe.Cgroup2Root, c.CgroupPath), &st)
		if err == nil && st.Ino == c.CgroupID || err != nil && !errors.Is(err, unix.ENOENT) {
			continue
		}
		if info, ok := s.cfg.Containers.MarkGone(c.CgroupID, time.Time{}, 0); ok {
			if err := s.ContainerGone(info); err != nil {
				s.cfg.Logger.Error("container gone", "id", c.ID, "error", err)
			}
		}
	}
}

// pollSyscalls emits, per cgroup, the syscall counts since the last poll.
func (s *Sensor) pollSyscalls(watched map[uint64]bool) {
	counts, err := s.kern.SyscallCounts()
	if err != nil {
		s.cfg.Logger.Error("read syscall counts", "error", err)
		return
	}
	per := make(map[uint64]map[string]uint64)
	for k, n := range counts {
		if d := n - s.poller.lastSys[k]; d > 0 {
			if per[k.CgroupID] == nil {
				per[k.CgroupID] = make(map[string]uint64)
			}
			per[k.CgroupID][kernel.SyscallName(k.Nr)] = d
		}
	}
	s.poller.lastSys = counts
	if watched != nil {
		s.forgetSyscalls(counts, watched)
	}
	now := time.Now()
	for cg, c := range per {
		s.emit(event.Event{Time: now, Kind: event.KindSyscalls, Verdict: event.VerdictAllow, CgroupID: cg, Counts: c})
	}
}

// forgetSyscalls deletes the counters of cgroups that are no longer watched
// (removed containers), so the map returns to its size when they are gone.
func (s *Sensor) forgetSyscalls(counts map[kernel.SyscallKey]uint64, watched map[uint64]bool) {
	var stale []kernel.SyscallKey
	for k := range counts {
		if !watched[k.CgroupID] {
			stale = append(stale, k)
			delete(s.poller.lastSys, k)
		}
	}
	if err := s.kern.ForgetSyscalls(stale); err != nil {
		s.cfg.Logger.Error("forget syscall counters", "error", err)
	}
	s.poller.syscallKeys.Store(int64(len(counts) - len(stale)))
}

// pollSuppressed reports identical violations the kernel counted but did
// not report, once a flood is over and no later report carried them.
func (s *Sensor) pollSuppressed() {
	list, err := s.kern.SuppressedViolations()
	if err != nil {
		s.cfg.Logger.Error("read violation rate limits", "error", err)
		return
	}
	for _, e := range s.violations.Suppressed(list, time.Now()) {
		s.emit(e)
	}
}

func diff(now, before map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64)
	for k, v := range now {
		if v > before[k] {
			out[k] = v - before[k]
		}
	}
	return out
}
