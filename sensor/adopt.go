package sensor

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/event"
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

// runtimeCgroups lists the cgroups below the runtime parents, by id, with
// their paths relative to the cgroup2 mount.
func (s *Sensor) runtimeCgroups() map[uint64]string {
	root := s.probe.Cgroup2Root
	out := make(map[uint64]string)
	for _, dir := range s.cfg.RuntimeParents {
		top := filepath.Join(root, dir)
		filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil // gone meanwhile, or not there yet
			}
			rel, rerr := filepath.Rel(top, p)
			if rerr != nil || rel == "." {
				return nil
			}
			if strings.Count(rel, "/") >= maxRuntimeDepth {
				return fs.SkipDir
			}
			var st unix.Stat_t
			if unix.Stat(p, &st) == nil {
				out[st.Ino] = "/" + filepath.Join(dir, rel)
			}
			return nil
		})
	}
	return out
}

// recoverHolds hands the holder every process stopped in a pending cgroup
// that it is not waiting on: the kernel stopped it at its first exec but
// the report was lost. A process counts only when still found so after the
// ring was seen drained (its report, if any, was read by then), or after
// lostReportWait if the ring never drains: a report still in the ring is
// not taken for a lost one.
func (s *Sensor) recoverHolds() {
	// Looked at before the scan: a drain now covers the reports of the
	// processes found stopped at earlier polls.
	drained := s.ring.Drained()
	now := time.Now()
	ids, err := s.kern.Pending()
	if err != nil {
		s.cfg.Logger.Error("read pending cgroups", "error", err)
		return
	}
	a := &s.adoption
	pending := make(map[uint64]bool, len(ids))
	var orphans []uint64
	for _, id := range ids {
		pending[id] = true
		if !s.holder.waiting(id) {
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
				tree = s.runtimeCgroups()
			}
			if rel, ok = tree[id]; !ok {
				continue
			}
			a.paths[id] = rel
		}
		stopped, _ := stoppedProcs(s.probe.Cgroup2Root, rel)
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
			s.holder.adopt(procExec(pid, id))
		}
	}
	a.candidates = next
}

// adoptRunning takes in the containers that were running before the
// programs were attached (the kernel saw no creation of their cgroups, so
// they are not pending): they are watched at once and named from their
// cgroup paths until the runtime names them fully, which also puts them
// under their policies. A container whose only process is stopped was held
// by a sensor that is gone: it is classified and let go like a new one.
// Cgroups made since the programs were attached are the hold's business.
func (s *Sensor) adoptRunning() {
	root := s.probe.Cgroup2Root
	// The tree first, the pending ones after: a cgroup made while the tree
	// is walked is pending by the time they are read.
	tree := s.runtimeCgroups()
	ids, err := s.kern.Pending()
	if err != nil {
		s.cfg.Logger.Error("read pending cgroups", "error", err)
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
		info, ok, err := container.Fallback(root, id, rel)
		if err != nil || !ok {
			continue
		}
		if _, known := s.cfg.Containers.Lookup(id); !known {
			s.cfg.Containers.Put(info)
		}
		if err := s.kern.Watch(id); err != nil {
			s.cfg.Logger.Error("watch a running container", "id", info.ID, "error", err)
		}
		if stopped, total := stoppedProcs(root, rel); total == 1 && len(stopped) == 1 {
			s.holder.adopt(procExec(stopped[0], id))
		}
	}
}

// stoppedProcs returns the stopped processes of a cgroup, and how many
// processes it holds.
func stoppedProcs(cgroup2, rel string) (stopped []uint32, total int) {
	b, err := os.ReadFile(filepath.Join(cgroup2, rel, "cgroup.procs"))
	if err != nil {
		return nil, 0
	}
	for _, line := range strings.Fields(string(b)) {
		pid, err := strconv.ParseUint(line, 10, 32)
		if err != nil {
			continue
		}
		total++
		if f, err := container.ProcStat("/proc", uint32(pid)); err == nil && len(f) > 0 && f[0] == "T" {
			stopped = append(stopped, uint32(pid))
		}
	}
	return stopped, total
}

// procExec rebuilds the exec event of a stopped process from /proc.
func procExec(pid uint32, cgroupID uint64) event.Event {
	dir := filepath.Join("/proc", strconv.FormatUint(uint64(pid), 10))
	e := event.Event{Time: time.Now(), Kind: event.KindExec, Verdict: event.VerdictAllow, Source: SourceProcfs,
		PID: pid, TID: pid, CgroupID: cgroupID, Held: true}
	if f, err := container.ProcStat("/proc", pid); err == nil && len(f) > 1 {
		if ppid, err := strconv.ParseUint(f[1], 10, 32); err == nil {
			e.PPID = uint32(ppid)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
		e.Comm = strings.TrimSuffix(string(b), "\n")
	}
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		e.Binary = exe
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil && len(b) > 0 {
		e.Args = strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
		e.UID = statusID(string(b), "Uid:")
		e.GID = statusID(string(b), "Gid:")
	}
	return e
}

// statusID returns the real id on the line of /proc/<pid>/status that
// starts with field ("Uid:" or "Gid:"), or 0.
func statusID(status, field string) uint32 {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			if f := strings.Fields(v); len(f) > 0 {
				if n, err := strconv.ParseUint(f[0], 10, 32); err == nil {
					return uint32(n)
				}
			}
		}
	}
	return 0
}
