package hold

import (
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/hostfs"
)

// SourceProcfs marks an exec event rebuilt from /proc: the kernel stopped
// the process but its report was lost (a full ring), or a sensor that is
// gone stopped it.
const SourceProcfs = "procfs"

// maxRuntimeDepth bounds how deep below a runtime parent containers are
// looked for, as the kernel does.
const maxRuntimeDepth = 8

// lostReportWait is how long a stopped process of a pending cgroup may go
// unreported, while the ring never drains, before it is taken as held.
const lostReportWait = 10 * time.Second

// holdKey is one stopped process of a pending cgroup.
type holdKey struct {
	cgroup uint64
	pid    uint32
}

// candidate is a stopped process of a pending cgroup the holder was not
// waiting on at a poll.
type candidate struct {
	seen time.Time
	// drained is set once the ring was seen drained after seen: any report
	// of the process has then reached the holder.
	drained bool
}

// adoption finds the processes the kernel stopped at a container's first
// exec whose report never arrived, so that none stays stopped. Owned by the
// goroutine that polls.
type adoption struct {
	paths      map[uint64]string // pending cgroup → path below the cgroup2 mount
	candidates map[holdKey]candidate
}

// Poll does what the holder does at each of the sensor's polls: retry the
// releases the kernel refused and the policies that could not be applied,
// and recover lost holds. drained says whether
// the ring was seen drained just before.
func (h *Holder) Poll(drained bool) {
	h.retryReleases()
	h.retryUnapplied()
	h.recoverHolds(drained)
}

// recoverHolds adopts every process stopped in a pending cgroup that the
// holder is not waiting on: the kernel stopped it at its first exec but
// the report was lost. A process counts only when still found so after the
// ring was seen drained (its report, if any, was read by then), or after
// lostReportWait if the ring never drains: a report still in the ring is
// not taken for a lost one.
func (h *Holder) recoverHolds(drained bool) {
	now := time.Now()
	ids, err := h.cfg.Kernel.Pending()
	if err != nil {
		h.log.Error("read pending cgroups", "error", err)
		return
	}
	a := &h.adoption
	pending := make(map[uint64]bool, len(ids))
	var orphans []uint64
	for _, id := range ids {
		pending[id] = true
		if !h.waiting(id) {
			orphans = append(orphans, id)
		}
	}
	for id := range a.paths {
		if !pending[id] {
			delete(a.paths, id)
		}
	}
	next := make(map[holdKey]candidate)
	var tree map[uint64]string
	for _, id := range orphans {
		rel, ok := a.paths[id]
		if !ok {
			if tree == nil {
				tree = hostfs.CgroupsBelow(h.cfg.Cgroup2, h.cfg.Parents, maxRuntimeDepth)
			}
			if rel, ok = tree[id]; !ok {
				continue
			}
			a.paths[id] = rel
		}
		stopped, _ := h.stoppedProcs(rel)
		for _, pid := range stopped {
			k := holdKey{id, pid}
			c, known := a.candidates[k]
			if !known {
				next[k] = candidate{seen: now}
				continue
			}
			c.drained = c.drained || drained
			if !c.drained && now.Sub(c.seen) < lostReportWait {
				next[k] = c
				continue
			}
			h.adopt(h.procExec(pid, id))
		}
	}
	a.candidates = next
}

// adopt takes a stopped process whose exec report never came: it goes the
// way of a reported one.
func (h *Holder) adopt(e event.Event) {
	h.recovered.Add(1)
	if !h.Take(e) {
		h.cfg.Signal(e.PID, unix.SIGCONT)
		h.cfg.Deliver(e)
	}
}

// AdoptRunning takes in the containers that were running before the
// programs were attached (the kernel saw no creation of their cgroups, so
// they are not pending): they are watched at once and named from their
// cgroup paths until the runtime names them fully, which also puts them
// under their policies. A container whose only process is stopped was held
// by a sensor that is gone: it is classified and let go like a new one.
// Cgroups made since the programs were attached are the hold's business.
func (h *Holder) AdoptRunning() {
	// The tree first, the pending ones after: a cgroup made while the tree
	// is walked is pending by the time they are read.
	tree := hostfs.CgroupsBelow(h.cfg.Cgroup2, h.cfg.Parents, maxRuntimeDepth)
	ids, err := h.cfg.Kernel.Pending()
	if err != nil {
		h.log.Error("read pending cgroups", "error", err)
		return
	}
	pending := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		pending[id] = true
	}
	for id, rel := range tree {
		if pending[id] {
			continue
		}
		info, ok, err := container.Fallback(h.cfg.Cgroup2, id, rel)
		if err != nil || !ok {
			continue
		}
		if _, known := h.cfg.Cache.Lookup(id); !known {
			h.cfg.Cache.Put(info)
		}
		if err := h.cfg.Kernel.Watch(id); err != nil {
			h.log.Error("watch a running container", "id", info.ID, "error", err)
		}
		if stopped, total := h.stoppedProcs(rel); total == 1 && len(stopped) == 1 {
			h.adopt(h.procExec(stopped[0], id))
		}
	}
}

// stoppedProcs returns the stopped processes of a cgroup, and how many
// processes it holds.
func (h *Holder) stoppedProcs(rel string) (stopped []uint32, total int) {
	pids, _ := hostfs.CgroupProcs(h.cfg.Cgroup2, rel)
	for _, pid := range pids {
		if hostfs.Stopped(h.cfg.ProcRoot, pid) {
			stopped = append(stopped, pid)
		}
	}
	return stopped, len(pids)
}

// procExec rebuilds the exec event of a stopped process from /proc.
func (h *Holder) procExec(pid uint32, cgroupID uint64) event.Event {
	p := hostfs.ReadProcess(h.cfg.ProcRoot, pid)
	e := event.Event{Time: time.Now(), Kind: event.KindExec, Verdict: event.VerdictAllow, Source: SourceProcfs,
		PID: pid, TID: pid, PPID: p.PPID, UID: p.UID, GID: p.GID, Comm: p.Comm, CgroupID: cgroupID,
		Binary: p.Exe, Args: p.Args, Held: true}
	if dev, ino, err := hostfs.FileID(filepath.Join(h.cfg.ProcRoot, strconv.FormatUint(uint64(pid), 10), "exe")); err == nil {
		e.Exe = event.FileID{Dev: dev, Ino: ino, Memfd: h.cfg.MemfdDev != 0 && dev == h.cfg.MemfdDev}
	}
	return e
}

// runtimeSelfExec reports whether a held exec is the runtime re-executing
// itself ("runc init") after joining the container's cgroup: from a sealed
// memfd copy of its binary (runc's defence against CVE-2019-5736), or its
// binary on the host. Judged by what was executed, as an object: an image
// cannot make its entrypoint be the host's runtime binary or a memfd
// before any of its code has run, whatever path or argv it names.
func (h *Holder) runtimeSelfExec(e *event.Event) bool {
	if len(e.Args) < 2 || e.Args[1] != "init" {
		return false
	}
	if e.Exe.Memfd {
		return true
	}
	return e.Exe.Ino != 0 && slices.Contains(h.cfg.RuntimeExes, event.FileID{Dev: e.Exe.Dev, Ino: e.Exe.Ino})
}
