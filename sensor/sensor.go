package sensor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/decode"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/hold"
	"github.com/ringfence/ringfence/sensor/hostfs"
	"github.com/ringfence/ringfence/sensor/kernel"
	"github.com/ringfence/ringfence/sensor/netif"
	"github.com/ringfence/ringfence/sensor/policies"
	"github.com/ringfence/ringfence/sensor/posture"
	"github.com/ringfence/ringfence/sensor/store"
	"github.com/ringfence/ringfence/sensor/violation"
)

// Config is everything the sensor needs; nothing is read from globals.
type Config struct {
	// WatchCgroups are cgroup v2 directories (absolute, or relative to the
	// cgroup2 mount) whose processes, and those of their descendants, are watched.
	WatchCgroups []string
	// CreateCgroups creates watched cgroup directories that do not exist yet.
	CreateCgroups bool
	// RingBytes sizes the kernel event ring; 0 keeps the default (16 MiB).
	RingBytes uint32
	// MapEntries sizes the kernel maps that grow with containers and
	// cgroups (kernel.MapsSized); 0 keeps kernel.DefaultMapEntries.
	MapEntries uint32
	// PinDir is the bpffs directory where the programs and maps are
	// pinned: they enforce while no daemon runs, and the next one adopts
	// them. "" pins nothing: the rules go with the process.
	PinDir string
	// PinLock, when set, is PinDir's lock, taken by the caller
	// (kernel.LockPins), who releases it once the sensor stopped.
	PinLock *kernel.PinLock
	// FailAttach makes the attach of that program fail (a failpoint, for
	// tests of a broken upgrade).
	FailAttach string
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
	// RuntimeBinaries are the runtime's programs on the host (runc): their
	// re-exec of themselves in a new container's cgroup runs on while the
	// container stays held.
	RuntimeBinaries []string
	// Runtime, when set, reports the container runtime connection.
	Runtime interface{ Status() container.Status }
	// Policies are policy files or directories of them; none: observe only.
	// They are read again on ReloadPolicies and when they change.
	Policies []string
	// AllowEmptyPolicy lets Policies that hold no policy (an emptied
	// directory) put an empty set in force; otherwise that is refused.
	AllowEmptyPolicy bool
	// RuntimeSocket is the runtime's API socket: mounting it into a
	// container is a posture finding (CIS 5.32).
	RuntimeSocket string
	Logger        *slog.Logger
}

// ConfigError is a Config setting the sensor cannot work with. Field names
// the setting, so that a command can name its own flag.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// The Config fields a ConfigError can name.
const (
	FieldWatchCgroups   = "WatchCgroups"
	FieldCreateCgroups  = "CreateCgroups"
	FieldRuntimeParents = "RuntimeParents"
	FieldRuntimeBinary  = "RuntimeBinaries"
	FieldPolicies       = "Policies"
)

// Sensor is a running sensor. Create it with New, run it with Run.
type Sensor struct {
	cfg     Config
	probe   kernel.Probe
	kern    *kernel.Sensor
	ring    *kernel.Ring
	decoder *decode.Decoder
	started time.Time
	queue   *queue
	ready   atomic.Bool
	// decodeErrs counts the records that could not be decoded, encodeErrs
	// the events that could not be encoded: lost, and counted so.
	decodeErrs, encodeErrs atomic.Uint64
	// clock tells how old a record is, for the reader's linger.
	clock bootClock

	engine     *enforce.Engine
	ifaces     *netif.Follower
	policies   *policies.Files
	violations *violation.Stage
	posture    posture.Options
	// hostMountNS names the mount namespace whose paths are host paths.
	hostMountNS string
	counts      counts
	poller      poller
	podLabels   podLabels // pod labels for selectors, where a source knows them: sources.go

	// Set when the sensor follows a container runtime.
	identity *container.Identity
	holder   *hold.Holder
	parents  *hold.Parents
}

// New probes the kernel, loads the programs of its tier and starts watching
// the configured cgroups. Nothing stays loaded when it returns an error.
func New(cfg Config) (_ *Sensor, err error) {
	cfg = withDefaults(cfg)
	p, err := kernel.ProbeTier()
	if err != nil {
		return nil, fmt.Errorf("capability probe: %w", err)
	}
	for _, dir := range cfg.RuntimeParents {
		if err := hold.CheckParent(dir); err != nil {
			return nil, &ConfigError{FieldRuntimeParents, err}
		}
	}
	ids, err := watchedIDs(cfg, p.Cgroup2Root)
	if err != nil {
		return nil, err
	}
	// Policy files refused before anything of the kernel is touched.
	if _, _, problems := enforce.LoadPaths(cfg.Policies...); len(cfg.Policies) > 0 && len(problems) > 0 {
		return nil, &ConfigError{FieldPolicies, problems.Every()}
	}
	kern, err := kernel.Load(p, kernel.Options{RingBytes: cfg.RingBytes, MapEntries: cfg.MapEntries,
		PinDir: cfg.PinDir, Lock: cfg.PinLock, Version: cfg.Version, FailAttach: cfg.FailAttach})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			kern.Close()
		}
	}()
	bootWall, clock, err := bootWallClock()
	if err != nil {
		return nil, err
	}
	hostNS, err := hostfs.HostMountNS("/proc")
	if err != nil {
		return nil, fmt.Errorf("mount namespace: %w", err)
	}
	s := &Sensor{
		hostMountNS: hostNS,
		cfg:         cfg,
		probe:       p,
		kern:        kern,
		decoder:     decode.New(bootWall, decode.NewProcResolver("/proc", readlink)),
		started:     time.Now(),
		clock:       clock,
		queue:       newQueue(cfg.QueueLen),
		counts:      newCounts(),
		poller:      newPoller(),
		ifaces:      netif.NewFollower(cfg.Logger),
	}
	if cfg.RuntimeSocket != "" {
		s.posture.RuntimeSockets = []string{cfg.RuntimeSocket}
	}
	defer func() {
		if err != nil {
			s.ifaces.Close()
		}
	}()
	if err := s.fill(ids); err != nil {
		return nil, err
	}
	// The maps hold what the rules need: now the programs may decide.
	if err := kern.Commit(); err != nil {
		return nil, err
	}
	if s.ring, err = kern.OpenRing(); err != nil {
		return nil, err
	}
	// With a store, what a lesser sink drops is still kept.
	if cfg.Store != nil {
		for _, sk := range cfg.Sinks {
			if y, ok := sk.(Yielder); ok {
				y.YieldWhile(s.ring.Pressed)
			}
		}
	}
	// Whatever the ring holds now was written while no daemon read it.
	s.decoder.MarkOfflineBefore(time.Since(bootWall))
	return s, nil
}

// fill puts into the maps what the programs need before they decide: the
// watched cgroups, the sensor's own exemption, the policies (numbered above
// any a daemon before left pinned), and the runtime's parents.
func (s *Sensor) fill(ids []uint64) error {
	cfg, kern := s.cfg, s.kern
	for _, id := range ids {
		if err := kern.Watch(id); err != nil {
			return err
		}
	}
	if self, err := ownCgroups(s.probe.Cgroup2Root, cfg.RuntimeParents, cfg.WatchCgroups); err == nil {
		if err := kern.Exempt(self...); err != nil {
			return err
		}
	} else {
		cfg.Logger.Warn("the sensor's own cgroup is not exempt from policies", "reason", err)
	}
	maxID, err := kern.MaxPolicyID()
	if err != nil {
		return err
	}
	s.engine = enforce.NewEngine(kern, enforce.Capabilities{ReadOnly: s.probe.Tier == kernel.TierFull, Bind: true}, s.ifaces, cfg.Logger)
	s.engine.NumberAfter(maxID)
	s.ifaces.SetEngine(s.engine)
	s.violations = violation.New(s.engine, 0)
	s.policies = policies.NewFiles(cfg.Policies, s.engine, s.sensorMessage, cfg.Logger)
	if cfg.AllowEmptyPolicy {
		s.policies.AllowEmpty()
	}
	if err := s.policies.Load(); err != nil {
		return &ConfigError{FieldPolicies, err}
	}
	if reported, err := kern.DropsReported(); err == nil {
		s.poller.lastLost = reported
	}
	if cfg.Containers != nil {
		return s.followRuntime()
	}
	return nil
}

// ownCgroups returns the cgroups the sensor exempts: its own and, when it
// runs in a container of a pod (its cgroup's parent is below a runtime
// parent, not one itself), the pod's, where a restart of its container is
// made. Every cgroup made below them is exempt too, so neither is one
// that holds containers or watched cgroups: not the root (a daemon started
// from a shell may run there), nor an ancestor of a runtime parent or of a
// watched cgroup; the sensor then exempts nothing, and says so.
func ownCgroups(cgroup2 string, runtimeParents, watched []string) ([]uint64, error) {
	rel, err := hostfs.CgroupOfPid("/proc", uint32(os.Getpid()))
	if err != nil {
		return nil, err
	}
	rel = path.Clean("/" + rel)
	if err := exemptable(rel, runtimeParents, watched); err != nil {
		return nil, err
	}
	self, err := hostfs.CgroupID(cgroup2, rel)
	if err != nil {
		return nil, err
	}
	ids := []uint64{self}
	if pod, ok, err := podCgroup(cgroup2, rel, runtimeParents, ""); err != nil {
		return nil, err
	} else if ok {
		ids = append(ids, pod)
	}
	return ids, nil
}

// podCgroup returns the id of the pod's cgroup of the container whose
// cgroup is rel: its parent, when that is strictly below a runtime parent
// (a pod's, where the kubelet makes the pod's containers and their
// restarts), not a runtime parent itself; and, when the pod's uid is
// given, when its name is the kubelet's cgroup of that pod (never a QoS
// class's cgroup, below which every pod of the class is made).
func podCgroup(cgroup2, rel string, runtimeParents []string, uid string) (uint64, bool, error) {
	pod := path.Dir(path.Clean("/" + rel))
	if !podBelowParent(pod, runtimeParents) {
		return 0, false, nil
	}
	if uid != "" && !podCgroupOf(path.Base(pod), uid) {
		return 0, false, fmt.Errorf("%s is not the cgroup of pod %s", pod, uid)
	}
	id, err := hostfs.CgroupID(cgroup2, pod)
	return id, err == nil, err
}

// podCgroupOf reports whether name is the kubelet's cgroup of the pod uid:
// pod<uid> (cgroupfs driver) or <qos slice>-pod<uid, "-" as "_">.slice
// (systemd driver).
func podCgroupOf(name, uid string) bool {
	return name == "pod"+uid || strings.HasSuffix(name, "-pod"+strings.ReplaceAll(uid, "-", "_")+".slice")
}

// exemptable refuses to exempt the cgroup rel when that would exempt what
// the sensor watches: the root, or an ancestor of a runtime parent or of a
// watched cgroup.
func exemptable(rel string, runtimeParents, watched []string) error {
	if rel == "/" {
		return errors.New("it runs in the root cgroup, where every cgroup is made")
	}
	for _, d := range append(slices.Clone(runtimeParents), watched...) {
		if d = path.Clean("/" + d); d == rel || strings.HasPrefix(d, rel+"/") {
			return fmt.Errorf("its cgroup %s holds %s: exempting it would exempt what it watches", rel, d)
		}
	}
	return nil
}

// podBelowParent reports whether dir is strictly below one of the runtime
// parents: a pod's cgroup, not a parent of every container.
func podBelowParent(dir string, runtimeParents []string) bool {
	for _, p := range runtimeParents {
		p = path.Clean("/" + p)
		if p != "/" && strings.HasPrefix(dir, p+"/") {
			return true
		}
	}
	return false
}

// withDefaults fills the settings left at zero.
func withDefaults(cfg Config) Config {
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 8192
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.HoldTimeout <= 0 {
		cfg.HoldTimeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Store != nil {
		cfg.Sinks = append(cfg.Sinks, cfg.Store)
	}
	return cfg
}

// watchedIDs returns the ids of the cgroups to watch, made first when asked.
func watchedIDs(cfg Config, cgroup2 string) ([]uint64, error) {
	ids := make([]uint64, 0, len(cfg.WatchCgroups))
	for _, dir := range cfg.WatchCgroups {
		if cfg.CreateCgroups {
			if err := hostfs.CreateCgroup(cgroup2, dir); err != nil {
				return nil, &ConfigError{FieldCreateCgroups, err}
			}
		}
		err := hostfs.CheckCgroup2(cgroup2, dir)
		var id uint64
		if err == nil {
			id, err = hostfs.CgroupID(cgroup2, dir)
		}
		if err != nil {
			return nil, &ConfigError{FieldWatchCgroups, err}
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// followRuntime makes the stages that follow a container runtime: the
// identity of events and the holds of new containers.
func (s *Sensor) followRuntime() error {
	cfg := s.cfg
	var exes []event.FileID
	var kexes []kernel.FileID
	for _, p := range cfg.RuntimeBinaries {
		dev, ino, err := hostfs.FileID(p)
		if err != nil {
			return &ConfigError{FieldRuntimeBinary, err}
		}
		exes = append(exes, event.FileID{Dev: dev, Ino: ino})
		kexes = append(kexes, kernel.FileID{Dev: dev, Ino: ino})
	}
	if err := s.kern.SetRuntimeExes(kexes); err != nil {
		return &ConfigError{FieldRuntimeBinary, err}
	}
	memfd, err := hostfs.MemfdDev()
	if err != nil {
		return err
	}
	s.identity = container.NewIdentity(cfg.Containers, s.kern.Owner)
	var connected func() bool
	if cfg.Runtime != nil {
		connected = func() bool { return cfg.Runtime.Status().Connected }
	}
	s.holder = hold.New(hold.Config{
		Kernel: s.kern, Cache: cfg.Containers, Timeout: cfg.HoldTimeout, Connected: connected,
		Deliver: s.queue.send,
		Apply:   s.applyPolicy, Judge: s.violations.Held,
		RuntimeExes: exes, MemfdDev: memfd,
		Cgroup2: s.probe.Cgroup2Root, Parents: cfg.RuntimeParents, Logger: cfg.Logger,
	})
	// Checked by New already: the error cannot happen.
	s.parents, _ = hold.NewParents(s.kern, s.probe.Cgroup2Root, cfg.RuntimeParents, cfg.Logger)
	s.parents.Register()
	return nil
}

// bootWallClock returns the wall-clock time at which CLOCK_BOOTTIME was
// zero, and the boot clock read from the same instant.
func bootWallClock() (time.Time, bootClock, error) {
	var ts unix.Timespec
	now := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Time{}, bootClock{}, fmt.Errorf("read CLOCK_BOOTTIME: %w", err)
	}
	return now.Add(-time.Duration(ts.Nano())), bootClock{at: now, boot: time.Duration(ts.Nano())}, nil
}

func readlink(p string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlink(p, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// Run reads and dispatches events until ctx ends, then detaches every
// program, closes every map and flushes the sinks. Events still queued when
// ctx ends are delivered before Run returns.
func (s *Sensor) Run(ctx context.Context) error {
	defer s.kern.Close()
	defer s.ifaces.Close()
	s.emit(s.startEvent())
	s.flush()
	// The sinks' stage runs before anything is queued: the replaced ring
	// and the adopted processes may hand over more than the queue holds.
	var wg sync.WaitGroup
	wg.Go(s.deliver)
	s.drainReplacedRing()
	if s.holder != nil {
		s.holder.AdoptRunning()
	}
	s.ready.Store(true)
	defer s.ready.Store(false)

	readErr := make(chan error, 1)
	wg.Go(func() {
		readErr <- s.ring.Run(ctx, s.onRecord)
		if s.holder != nil {
			// Without pins nobody stays stopped after the sensor is gone;
			// with them, the kernel keeps holding for the next daemon.
			s.holder.Stop(s.cfg.PinDir == "")
		}
		s.queue.close()
	})

	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
			if s.holder != nil && s.cfg.PinDir == "" {
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

// drainReplacedRing reads what the programs a new load replaced left in
// their ring (when its size changed), before the sensor reads its own.
func (s *Sensor) drainReplacedRing() {
	old, err := s.kern.OldRing()
	if err != nil {
		s.cfg.Logger.Error("drain the replaced event ring", "error", err)
		return
	}
	if old == nil {
		return
	}
	if err := old.Drain(s.onRecord); err != nil {
		s.cfg.Logger.Error("drain the replaced event ring", "error", err)
	}
}

// ReloadPolicies reads the policy paths again (SIGHUP does this).
func (s *Sensor) ReloadPolicies() error { return s.policies.Load() }

// Probe returns the capability probe's outcome.
func (s *Sensor) Probe() kernel.Probe { return s.probe }

// Watch starts watching one more cgroup by id.
func (s *Sensor) Watch(cgroupID uint64) error { return s.kern.Watch(cgroupID) }

// Ready reports whether the sensor is attached and reading events.
func (s *Sensor) Ready() bool { return s.ready.Load() }

// Watched lists the watched cgroup ids.
func (s *Sensor) Watched() ([]uint64, error) { return s.kern.Watched() }

// PolicyStatus describes the policy set in force.
func (s *Sensor) PolicyStatus() enforce.Status { return s.engine.Status() }

// PoliciesOf names the policies that select the container of cgroup.
func (s *Sensor) PoliciesOf(cgroup uint64) []string { return s.engine.PoliciesOf(cgroup) }
