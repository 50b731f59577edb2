package sensor

import (
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/kernel"
	"github.com/ringfence/ringfence/sensor/status"
)

// Snapshot describes the sensor for `ringfence status` and the metrics.
func (s *Sensor) Snapshot() *status.Snapshot {
	snap := &status.Snapshot{
		PID:        unix.Getpid(),
		Version:    s.cfg.Version,
		Started:    s.started,
		Ready:      s.Ready(),
		Tier:       string(s.probe.Tier),
		TierReason: s.probe.Reason,
		ActiveLSMs: s.probe.ActiveLSMs,
	}
	for _, h := range s.kern.Hooks() {
		snap.Hooks = append(snap.Hooks, status.Hook(h))
	}
	for _, c := range kernel.Capabilities(s.probe) {
		snap.Capabilities = append(snap.Capabilities, status.Capability(c))
	}
	if ids, err := s.kern.Watched(); err == nil {
		snap.Watched = len(ids)
	}
	snap.Lost, _ = s.Lost()
	snap.Stalls = s.Stalls()
	snap.SinkDropped = s.SinkDropped()
	snap.SyscallCounters = int(s.poller.syscallKeys.Load())
	if sizes, err := s.kern.MapSizes(); err == nil {
		snap.KernelMaps = sizes
	}
	snap.KernelMapCapacity = s.kern.MapCapacities()
	if p := s.kern.Pinned(); p.Dir != "" {
		sp := status.Pinned{Dir: p.Dir, State: string(p.State), Layout: p.Layout, Programs: p.Programs, Generation: p.Generation,
			FoundVersion: p.FoundVersion, FoundLayout: p.FoundLayout, FoundPrograms: p.FoundPrograms}
		snap.Pinned = &sp
	}
	snap.KernelViolations, _ = s.kern.ViolationCounts()
	_, snap.Untracked = s.violations.Tracked()
	if s.holder != nil {
		snap.Holds = s.holder.Counts()
		if u := s.holder.Unapplied(); len(u) > 0 {
			snap.Unapplied = u
		}
	}
	if s.cfg.Containers != nil {
		snap.Containers = s.cfg.Containers.Len()
	}
	if s.cfg.Runtime != nil {
		rs := s.cfg.Runtime.Status()
		snap.Runtime = &status.Runtime{Socket: rs.Socket, Connected: rs.Connected, Version: rs.Version, Reconnects: rs.Reconnects, LastError: rs.LastError}
	}
	if s.cfg.Store != nil {
		st := s.cfg.Store.Stats()
		snap.Store = &status.Store{Path: s.cfg.StorePath, Segments: st.Segments, Bytes: st.Bytes, Events: st.Events}
	}
	snap.Events, snap.Violations = s.counts.snapshot()
	ps := s.engine.Status()
	snap.Policy = &ps
	return snap
}
