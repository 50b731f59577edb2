package sensor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/decode"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/kernel"
	"github.com/ringfence/ringfence/sensor/posture"
	"github.com/ringfence/ringfence/sensor/status"
	"github.com/ringfence/ringfence/sensor/store"
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

// Stalls counts, by stage, the times a stage waited for the next one:
// "ring" the times the kernel ring was found three quarters full (the
// reader behind, every overflow is preceded by one), "reader_queue" the
// times the reader waited for the sinks, and each sink's own.
func (s *Sensor) Stalls() map[string]uint64 {
	out := map[string]uint64{"ring": s.ring.Backlogs(), "reader_queue": s.queueStalls.Load()}
	for _, sk := range s.cfg.Sinks {
		if sr, ok := sk.(StallReporter); ok {
			maps.Copy(out, sr.Stalls())
		}
	}
	return out
}

// Config is everything the sensor needs; nothing is read from globals.
type Config struct {
	// WatchCgroups are cgroup v2 directories (absolute, or relative to the
	// cgroup2 mount) whose processes, and those of their descendants, are watched.
	WatchCgroups []string
	// CreateCgroups creates watched cgroup directories that do not exist yet.
	CreateCgroups bool
	// RingBytes sizes the kernel event ring; 0 keeps the default (16 MiB).
	RingBytes uint32
	// QueueLen bounds the queue between the ring reader and the sinks.
	QueueLen int
	// Interval is how often loss and syscall counters are read.
	Interval time.Duration
	Version  string
	Sinks    []Sink
	// Store, when set, is the event store; it is also fed as a sink.
	Store     *store.Sink
	StorePath string
	// Containers, when set, gives events their container: a lookup by
	// cgroup id in memory, never a call to the runtime.
	Containers *container.Cache
	// RuntimeParents are the cgroups (relative to the cgroup2 mount) under
	// which the runtime creates containers. With Containers set, a cgroup
	// created below one is watched from its creation, and its first exec
	// is stopped before its first instruction until the container is known.
	RuntimeParents []string
	// HoldTimeout bounds that wait; the process runs then, counted as a timeout.
	HoldTimeout time.Duration
	// Runtime, when set, reports the container runtime connection.
	Runtime interface{ Status() container.Status }
	// Policies are policy files or directories of them; none: observe only.
	// They are read again on ReloadPolicies and when they change.
	Policies []string
	// RuntimeSocket is the runtime's API socket: mounting it into a
	// container is a posture finding (CIS 5.32).
	RuntimeSocket string
	Logger        *slog.Logger
}

// Sensor is a running sensor. Create it with New, run it with Run.
type Sensor struct {
	cfg     Config
	probe   kernel.Probe
	kern    *kernel.Sensor
	ring    *kernel.Ring
	decoder *decode.Decoder
	started time.Time

	queue   chan event.Event
	ready   atomic.Bool
	holder  *holder
	parents map[string]bool // runtime parents registered in the kernel
	// queueStalls counts the times the reader waited for the sinks: it waits
	// rather than drop, so the kernel ring absorbs the delay, and counts
	// per event kind whatever it cannot hold.
	queueStalls atomic.Uint64
	decodeErrs  atomic.Uint64
	syscallKeys atomic.Int64 // syscall counters in the kernel map after the last poll

	posture     posture.Options
	engine      *enforce.Engine
	ifaces      *ifaceFollower
	policyMu    sync.Mutex    // serialises policy reloads
	policyPrint string        // the policy files as last read
	sources     policySources // policies besides files, and pod labels: policy_sources.go

	mu         sync.Mutex
	counts     map[string]uint64 // events by kind/verdict
	violations map[string]uint64 // by policy/rule/mode, suppressed ones included
	suppressed map[suppressKey]uint64
	lastSys    map[kernel.SyscallKey]uint64
	lastLost   map[string]uint64

	adoption adoption // owned by the goroutine that polls

	ownersMu sync.Mutex
	owners   map[uint64]uint64 // cgroup → its container's cgroup, see containerCgroup
}

// New probes the kernel, loads the programs of its tier and starts watching
// the configured cgroups. Nothing stays loaded when it returns an error.
func New(cfg Config) (_ *Sensor, err error) {
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 8192
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Store != nil {
		cfg.Sinks = append(cfg.Sinks, cfg.Store)
	}
	p, err := kernel.ProbeTier()
	if err != nil {
		return nil, fmt.Errorf("capability probe: %w", err)
	}
	for _, dir := range cfg.RuntimeParents {
		if err := checkRuntimeParent(dir); err != nil {
			return nil, fmt.Errorf("--container-parent %q: %w", dir, err)
		}
	}
	ids := make([]uint64, 0, len(cfg.WatchCgroups))
	for _, dir := range cfg.WatchCgroups {
		if cfg.CreateCgroups {
			if err := createCgroup(p.Cgroup2Root, dir); err != nil {
				return nil, fmt.Errorf("--create-cgroup: %w", err)
			}
		}
		id, _, err := CgroupID(p.Cgroup2Root, dir)
		if err != nil {
			return nil, fmt.Errorf("--watch-cgroup: %w", err)
		}
		ids = append(ids, id)
	}
	kern, err := kernel.Load(p, kernel.Options{RingBytes: cfg.RingBytes})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			kern.Close()
		}
	}()
	for _, id := range ids {
		if err := kern.Watch(id); err != nil {
			return nil, err
		}
	}
	ring, err := kern.OpenRing()
	if err != nil {
		return nil, err
	}
	bootWall, err := bootWallClock()
	if err != nil {
		return nil, err
	}
	s := &Sensor{
		cfg:      cfg,
		probe:    p,
		kern:     kern,
		ring:     ring,
		decoder:  decode.New(bootWall, decode.NewProcResolver("/proc", readlink)),
		started:  time.Now(),
		queue:    make(chan event.Event, cfg.QueueLen),
		counts:   make(map[string]uint64),
		lastSys:  make(map[kernel.SyscallKey]uint64),
		lastLost: make(map[string]uint64),
		parents:  make(map[string]bool),
		owners:   make(map[uint64]uint64),
		adoption: adoption{paths: make(map[uint64]string)},

		violations: make(map[string]uint64),
		suppressed: make(map[suppressKey]uint64),
	}
	if cfg.RuntimeSocket != "" {
		s.posture.RuntimeSockets = []string{cfg.RuntimeSocket}
	}
	s.ifaces = newIfaceFollower(cfg.Logger)
	defer func() {
		if err != nil {
			s.ifaces.Close()
		}
	}()
	s.engine = enforce.NewEngine(kern, enforce.Capabilities{ReadOnly: p.Tier == kernel.TierFull, Bind: true}, s.ifaces, cfg.Logger)
	s.ifaces.engine = s.engine
	if err := s.loadPolicies(); err != nil {
		return nil, fmt.Errorf("--policy: %w", err)
	}
	if cfg.HoldTimeout <= 0 {
		s.cfg.HoldTimeout = 2 * time.Second
	}
	if cfg.Containers != nil {
		var connected func() bool
		if cfg.Runtime != nil {
			connected = func() bool { return cfg.Runtime.Status().Connected }
		}
		s.holder = newHolder(kern, cfg.Containers, s.cfg.HoldTimeout, func(e event.Event) { s.queue <- e }, connected, p.Cgroup2Root)
		s.holder.apply = s.applyPolicy
		s.holder.violation = s.heldViolation
		s.registerParents()
	}
	return s, nil
}

// registerParents tells the kernel about the runtime parent cgroups: those
// that exist by id, the others by the names of their missing parts, so the
// kernel marks each the moment it is created. Run at start and at every
// poll.
func (s *Sensor) registerParents() {
	for i, dir := range s.cfg.RuntimeParents {
		if s.parents[dir] {
			continue
		}
		id, _, err := CgroupID(s.probe.Cgroup2Root, dir)
		if err == nil {
			if err := s.kern.AddRuntimeParent(id); err != nil {
				s.cfg.Logger.Error("register runtime parent cgroup", "dir", dir, "error", err)
				continue
			}
			s.parents[dir] = true
			continue
		}
		ancestor, missing, err := s.nearestCgroup(dir)
		if err == nil {
			err = s.kern.ExpectRuntimeParent(uint32(i), ancestor, missing)
		}
		if err != nil {
			s.cfg.Logger.Error("register runtime parent cgroup to come", "dir", dir, "error", err)
		}
	}
}

// checkRuntimeParent refuses a runtime parent the kernel could not
// recognise by name when it is created.
func checkRuntimeParent(dir string) error {
	clean := path.Clean("/" + dir)
	if clean == "/" {
		return errors.New("the cgroup2 root cannot be a container parent")
	}
	parts := strings.Split(clean, "/")[1:]
	if len(parts) > kernel.MaxParentParts {
		return fmt.Errorf("%d path parts, at most %d", len(parts), kernel.MaxParentParts)
	}
	for _, p := range parts {
		if len(p) > kernel.MaxParentName {
			return fmt.Errorf("path part %q is longer than %d bytes", p, kernel.MaxParentName)
		}
	}
	return nil
}

// nearestCgroup returns the id of dir's deepest existing ancestor and the
// path parts below it that do not exist yet.
func (s *Sensor) nearestCgroup(dir string) (uint64, []string, error) {
	parts := strings.Split(path.Clean("/"+dir), "/")[1:]
	for n := len(parts) - 1; n >= 0; n-- {
		id, _, err := CgroupID(s.probe.Cgroup2Root, strings.Join(parts[:n], "/"))
		if err == nil {
			return id, parts[n:], nil
		}
	}
	return 0, nil, fmt.Errorf("no cgroup on the way to %s", dir)
}

// bootWallClock returns the wall-clock time at which CLOCK_BOOTTIME was zero.
func bootWallClock() (time.Time, error) {
	var ts unix.Timespec
	now := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Time{}, fmt.Errorf("read CLOCK_BOOTTIME: %w", err)
	}
	return now.Add(-time.Duration(ts.Nano())), nil
}

func readlink(p string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlink(p, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// Probe returns the capability probe's outcome.
func (s *Sensor) Probe() kernel.Probe { return s.probe }

// Containers lists the containers the sensor knows, when it follows a runtime.
func (s *Sensor) Containers() []container.Info {
	if s.cfg.Containers == nil {
		return nil
	}
	return s.cfg.Containers.List()
}

// Watch starts watching one more cgroup by id.
func (s *Sensor) Watch(cgroupID uint64) error { return s.kern.Watch(cgroupID) }

// Run reads and dispatches events until ctx ends, then detaches every
// program, closes every map and flushes the sinks. Events still queued when
// ctx ends are delivered before Run returns.
func (s *Sensor) Run(ctx context.Context) error {
	defer s.kern.Close()
	defer s.ifaces.Close()
	s.emit(s.startEvent())
	s.flush()
	if s.holder != nil {
		s.adoptRunning()
	}
	s.ready.Store(true)
	defer s.ready.Store(false)

	var wg sync.WaitGroup
	readErr := make(chan error, 1)
	wg.Go(func() {
		readErr <- s.ring.Run(ctx, s.onRecord)
		if s.holder != nil {
			s.holder.stop() // nobody stays stopped after the sensor is gone
		}
		close(s.queue)
	})
	wg.Go(func() {
		for e := range s.queue {
			s.dispatch(&e)
			if len(s.queue) == 0 {
				s.flush() // idle: push buffered lines out now
			}
		}
	})

	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
			if s.holder != nil {
				if err := s.kern.StopHolding(); err != nil {
					s.cfg.Logger.Error("stop holding new containers", "error", err)
				}
			}
		case <-tick.C:
		}
		s.poll()
	}
	wg.Wait()
	return errors.Join(<-readErr, s.flush())
}

func (s *Sensor) flush() error {
	var errs []error
	for _, sk := range s.cfg.Sinks {
		errs = append(errs, sk.Flush())
	}
	return errors.Join(errs...)
}

// onRecord runs on the ring reader goroutine: decode and queue. A full
// queue makes it wait, which leaves records in the ring; if the ring fills,
// the kernel counts each lost record by kind. Nothing is dropped here.
func (s *Sensor) onRecord(raw []byte) {
	e, err := s.decoder.Decode(raw)
	if err != nil {
		s.decodeErrs.Add(1)
		s.cfg.Logger.Warn("undecodable record", "error", err)
		return
	}
	if (e.Held || e.Pending) && s.holder != nil && s.holder.take(e) {
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

func (s *Sensor) dispatch(e *event.Event) {
	if e.Container == nil && e.CgroupID != 0 {
		if c, ok := s.containerOf(e.CgroupID); ok {
			e.Container = &event.Container{ID: c.ID, Name: c.Name, Image: c.Image, Pod: c.Pod, Namespace: c.PodNamespace}
		}
	}
	if e.Kind == event.KindViolation {
		s.nameViolation(e)
	}
	s.mu.Lock()
	s.counts[string(e.Kind)+"/"+string(e.Verdict)]++
	if e.Kind == event.KindViolation {
		s.violations[e.Policy+"/"+e.Rule+"/"+e.Mode] += e.ViolationCount()
	}
	s.mu.Unlock()
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

// containerOf returns the container of a cgroup: its own, or for a cgroup
// made inside a container, that container's (one map lookup in the kernel,
// only when the cache does not know the cgroup).
func (s *Sensor) containerOf(cgroupID uint64) (container.Info, bool) {
	if s.cfg.Containers == nil {
		return container.Info{}, false
	}
	if c, ok := s.cfg.Containers.Lookup(cgroupID); ok {
		return c, true
	}
	return s.cfg.Containers.Lookup(s.containerCgroup(cgroupID))
}

// containerCgroup returns the container cgroup a cgroup belongs to: the
// container's own for a cgroup made inside it, else the cgroup itself.
// The answer never changes (the kernel decides it when the cgroup is made,
// before anything runs in it), so it is remembered until the cgroup is gone.
func (s *Sensor) containerCgroup(cgroupID uint64) uint64 {
	s.ownersMu.Lock()
	defer s.ownersMu.Unlock()
	if owner, ok := s.owners[cgroupID]; ok {
		return owner
	}
	owner, ok := s.kern.Owner(cgroupID)
	if !ok {
		owner = cgroupID
	}
	s.owners[cgroupID] = owner
	return owner
}

// forgetOwners drops what containerCgroup remembers of cgroups no longer
// watched.
func (s *Sensor) forgetOwners(watched map[uint64]bool) {
	s.ownersMu.Lock()
	defer s.ownersMu.Unlock()
	for id := range s.owners {
		if !watched[id] {
			delete(s.owners, id)
		}
	}
}

// emit sends an event the sensor itself produced, bypassing the queue.
func (s *Sensor) emit(e event.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	s.dispatch(&e)
}

func (s *Sensor) startEvent() event.Event {
	return event.Event{
		Kind:    event.KindSensor,
		Verdict: event.VerdictAllow,
		Message: fmt.Sprintf("started: tier %s: %s", s.probe.Tier, s.probe.Reason),
	}
}

// Lost returns every loss counter: the kernel's by cause, undecodable
// records, and what sinks report.
func (s *Sensor) Lost() (map[string]uint64, error) {
	lost, err := s.kern.Drops()
	if err != nil {
		return nil, err
	}
	lost["undecodable"] = s.decodeErrs.Load()
	for _, sk := range s.cfg.Sinks {
		if lr, ok := sk.(LossReporter); ok {
			for k, v := range lr.Lost() {
				lost[k] += v
			}
		}
	}
	return lost, nil
}

// poll reads the counters, reports what changed, and publishes the status.
func (s *Sensor) poll() {
	lost, err := s.Lost()
	if err != nil {
		s.cfg.Logger.Error("read loss counters", "error", err)
	} else if delta := diff(lost, s.lastLost); len(delta) > 0 {
		s.lastLost = lost
		s.emit(event.Event{Kind: event.KindSensor, Verdict: event.VerdictAllow, Message: store.LostMessage, Counts: delta})
	}
	defer s.flush()
	watched, werr := s.watchedSet()
	if werr != nil {
		s.cfg.Logger.Error("read watched cgroups", "error", werr)
	}
	s.pollSyscalls(watched)
	s.pollSuppressed()
	s.reloadIfChanged()
	if watched != nil {
		s.forgetOwners(watched)
	}
	if s.holder != nil {
		s.registerParents()
		s.recoverHolds()
		s.retireGone()
	}
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
		if _, ok := s.cfg.Containers.MarkGone(c.CgroupID, time.Time{}, 0); ok {
			if err := s.engine.Remove(c.CgroupID); err != nil {
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
		if d := n - s.lastSys[k]; d > 0 {
			if per[k.CgroupID] == nil {
				per[k.CgroupID] = make(map[string]uint64)
			}
			per[k.CgroupID][kernel.SyscallName(k.Nr)] = d
		}
	}
	s.lastSys = counts
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
			delete(s.lastSys, k)
		}
	}
	if err := s.kern.ForgetSyscalls(stale); err != nil {
		s.cfg.Logger.Error("forget syscall counters", "error", err)
	}
	s.syscallKeys.Store(int64(len(counts) - len(stale)))
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

// Ready reports whether the sensor is attached and reading events.
func (s *Sensor) Ready() bool { return s.ready.Load() }

// Watched lists the watched cgroup ids.
func (s *Sensor) Watched() ([]uint64, error) { return s.kern.Watched() }

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
	for _, c := range kernel.Capabilities(s.probe.Tier, s.probe.Reason) {
		snap.Capabilities = append(snap.Capabilities, status.Capability(c))
	}
	if ids, err := s.kern.Watched(); err == nil {
		snap.Watched = len(ids)
	}
	snap.Lost, _ = s.Lost()
	snap.Stalls = s.Stalls()
	snap.SyscallCounters = int(s.syscallKeys.Load())
	if sizes, err := s.kern.MapSizes(); err == nil {
		snap.KernelMaps = sizes
	}
	if s.holder != nil {
		snap.Holds = s.holder.counts()
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
	s.mu.Lock()
	snap.Events = maps.Clone(s.counts)
	snap.Violations = maps.Clone(s.violations)
	s.mu.Unlock()
	ps := s.engine.Status()
	snap.Policy = &ps
	return snap
}
