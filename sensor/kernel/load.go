package kernel

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/bpf"
)

const probeProgram = bpf.SensorProgRfProbeLsm

// Hook is one attached (or attempted) program.
type Hook struct {
	Program  string `json:"program"`
	Hook     string `json:"hook"`
	Attached bool   `json:"attached"`
	// Error says why it is not attached; empty when it is.
	Error string `json:"error,omitempty"`
}

// Options tune Load.
type Options struct {
	// RingBytes is the size of the event ring buffer; 0 keeps the default.
	// It must be a power of two and a multiple of the page size.
	RingBytes uint32
	// MapEntries is the capacity of each kernel map that grows with the
	// node's containers and cgroups (MapsSized); 0 keeps DefaultMapEntries.
	MapEntries uint32
	// PinDir is the bpffs directory where the programs' links and the
	// maps are pinned, so that they outlive the process; "" pins nothing
	// (everything goes with the process).
	PinDir string
	// Lock, when set, is PinDir's lock, taken by the caller (LockPins),
	// who releases it after Close; else Load takes it and Close releases it.
	Lock *PinLock
	// Version names the daemon build, recorded with the programs it
	// loads: two builds hand over as an upgrade.
	Version string
	// FailAttach names a program whose attach Commit fails, after the
	// others: a failpoint, to test that a broken new set changes nothing.
	FailAttach string
}

// DefaultMapEntries is the default capacity of the maps that grow with
// containers and cgroups.
const DefaultMapEntries = 65536

// MapsSized lists the maps Options.MapEntries sizes: those a container can
// grow (by its cgroups, addresses, syscalls). At capacity, an insert fails
// and is counted (watch_map_full, syscall_map_full), or a policy cannot be
// applied and the container stays held: never a rule silently lost.
func MapsSized() []string {
	return []string{bpf.SensorMapWatched, bpf.SensorMapPending, bpf.SensorMapOwners, bpf.SensorMapMembers, bpf.SensorMapRoRoots,
		bpf.SensorMapRoDevs, bpf.SensorMapBindAddrs, bpf.SensorMapBindIfindexes, bpf.SensorMapSyscallCounts}
}

// optionalHookRelease returns the release that added an LSM hook that may
// be missing from the kernel without failing the load ("" for a hook that
// must be there).
func optionalHookRelease(hook string) string {
	switch hook {
	case "file_truncate", "inode_set_acl", "inode_remove_acl":
		return "6.2"
	case "file_ioctl_compat":
		return "6.8"
	case "inode_file_setattr":
		return "6.17"
	}
	return ""
}

// optionalHook reports whether an LSM hook may be missing from the kernel.
func optionalHook(hook string) bool { return optionalHookRelease(hook) != "" }

// optionalHooks lists them.
func optionalHooks() []string {
	return []string{"file_ioctl_compat", "file_truncate", "inode_file_setattr", "inode_remove_acl", "inode_set_acl"}
}

// skippedReason says why an optional hook is not attached.
func skippedReason(hook string) string {
	return fmt.Sprintf("optional hook absent from this kernel (no bpf_lsm_%s in its BTF; added in %s)", hook, optionalHookRelease(hook))
}

// LoadError is a failure of the kernel to load the programs. Its message
// carries the verifier's whole log, where there is one; it wraps the
// cause (errors.Is(err, ebpf.ErrNotSupported), say).
type LoadError struct{ Err error }

func (e *LoadError) Error() string { return fmt.Sprintf("load programs: %+v", e.Err) }
func (e *LoadError) Unwrap() error { return e.Err }

// Sensor holds the loaded programs, their links and maps. Close releases
// what is not pinned.
type Sensor struct {
	maps bpf.SensorMaps
	// progs are the programs loaded and not attached yet (Commit attaches
	// them), with their specs; none when the pinned ones were adopted.
	progs map[string]*ebpf.Program
	specs map[string]*ebpf.ProgramSpec
	links []link.Link
	hooks []Hook
	tier  Tier
	opts  Options

	cgroupRoot string
	pins       *pinDir // nil: nothing pinned
	state      State
	// fresh are the maps this load made (pinned at Commit); oldRing is a
	// pinned ring they replace, for the sensor to drain.
	fresh    map[string]bool
	oldRing  *ebpf.Map
	layouts  map[string][sha256.Size]byte
	programs [sha256.Size]byte

	// rootsMu guards devRoots: how many registered roots each device in
	// ro_devs has, so that it leaves the map with its last root.
	rootsMu  sync.Mutex
	devRoots map[uint32]int
}

// State says what a load found pinned and what it does with it.
type State string

// The states of a load.
const (
	// StateNew: nothing was pinned (or no pinning): everything is new.
	StateNew State = "new"
	// StateAdopted: the pinned programs and maps are this build's; they
	// stay attached, nothing is replaced.
	StateAdopted State = "adopted"
	// StateUpgrade: other programs are pinned; Commit attaches these and
	// then detaches those, carrying over the maps whose layout agrees.
	StateUpgrade State = "upgrade"
)

// Load loads the programs of the probed tier and their maps, without
// attaching anything: Commit does, once the caller has filled the maps, so
// that no program decides on an empty map. With a pin directory, the
// pinned maps whose layout is this build's are used as they are, and when
// the pinned programs are this build's too they are adopted, attached as
// they are. A program required for the tier that fails to load fails the
// whole load: nothing changes then.
func Load(p Probe, opts Options) (_ *Sensor, err error) {
	spec, skipped, err := prepare(p, opts)
	if err != nil {
		return nil, err
	}
	s := &Sensor{tier: p.Tier, hooks: skipped, opts: opts, cgroupRoot: p.Cgroup2Root, state: StateNew,
		fresh: make(map[string]bool), devRoots: make(map[uint32]int), layouts: mapLayouts(spec)}
	s.programs = programsHash(spec, p.Tier, opts.Version)
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	reused := map[string]*ebpf.Map{}
	if opts.PinDir != "" {
		if s.pins, err = openPins(opts.PinDir, opts.Lock); err != nil {
			return nil, err
		}
		if reused, err = s.pins.reusable(spec, s.layouts); err != nil {
			return nil, err
		}
		defer closeAll(reused) // cloned by the load
	}
	if err := spec.LoadAndAssign(&s.maps, &ebpf.CollectionOptions{MapReplacements: reused}); err != nil {
		return nil, &LoadError{err}
	}
	for name := range spec.Maps {
		if _, ok := reused[name]; !ok {
			s.fresh[name] = true
		}
	}
	if err := s.carryOver(spec); err != nil {
		return nil, err
	}
	if s.adopt() {
		return s, nil
	}
	return s, s.loadPrograms(spec)
}

// prepare reads the programs' spec and sets it up for the tier and opts.
func prepare(p Probe, opts Options) (*ebpf.CollectionSpec, []Hook, error) {
	spec, err := bpf.LoadSensor()
	if err != nil {
		return nil, nil, fmt.Errorf("load sensor spec: %w", err)
	}
	delete(spec.Programs, probeProgram)
	if opts.RingBytes != 0 {
		spec.Maps[bpf.SensorMapEvents].MaxEntries = opts.RingBytes
	}
	entries := opts.MapEntries
	if entries == 0 {
		entries = DefaultMapEntries
	}
	for _, name := range MapsSized() {
		spec.Maps[name].MaxEntries = entries
	}
	if p.Tier == TierFull {
		requestOverlay()
	}
	kernelBTF, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, nil, fmt.Errorf("load kernel BTF: %w", err)
	}
	skipped, err := configure(spec, p.Tier, kernelBTF)
	if err != nil {
		return nil, nil, err
	}
	// Only the LSM hooks use it: on the other tier it is no part of the
	// programs, nor of their identity.
	known := p.Tier == TierFull && overlayKnown(kernelBTF)
	if err := spec.Variables["cfg_overlay_known"].Set(boolU32(known)); err != nil {
		return nil, nil, fmt.Errorf("set cfg_overlay_known: %w", err)
	}
	return spec, skipped, nil
}

// requestOverlay has the kernel load overlayfs if it is a module not
// loaded yet (asking for the filesystem type loads it, as a mount would),
// so that its BTF is there when the programs are relocated: the file hooks
// tell overlayfs's own work below a write by its struct ovl_fs. Where it
// cannot be had, nothing changes but that (overlayKnown says so).
func requestOverlay() {
	if fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC); err == nil {
		unix.Close(fd)
	}
}

// overlayKnown reports whether the kernel's BTF, vmlinux's or the overlay
// module's, describes struct ovl_fs. It is a load-time constant of the
// programs, so pinned programs loaded without it are not adopted by a
// load that has it.
func overlayKnown(kernelBTF *btf.Spec) bool {
	if hasStruct(kernelBTF, "ovl_fs") {
		return true
	}
	f, err := os.Open("/sys/kernel/btf/overlay")
	if err != nil {
		return false
	}
	defer f.Close()
	mod, err := btf.LoadSplitSpecFromReader(f, kernelBTF)
	return err == nil && hasStruct(mod, "ovl_fs")
}

// hasStruct reports whether spec describes a struct of that name, once or
// more: Debian's 6.18 overlay module describes struct ovl_fs twice, which
// a lookup of one type refuses (btf.ErrMultipleMatches).
func hasStruct(spec *btf.Spec, name string) bool {
	types, err := spec.AnyTypesByName(name)
	if err != nil {
		return false
	}
	for _, t := range types {
		if _, ok := t.(*btf.Struct); ok {
			return true
		}
	}
	return false
}

// programsHash identifies the programs a load attaches: the object, the
// programs kept for the tier, their settings, and the build.
func programsHash(spec *ebpf.CollectionSpec, tier Tier, version string) [sha256.Size]byte {
	h := sha256.New()
	obj := bpf.ObjectHash()
	h.Write(obj[:])
	fmt.Fprintf(h, "%s %s %v", tier, version, sortedKeys(spec.Programs))
	for _, name := range sortedKeys(spec.Variables) {
		if v := spec.Variables[name]; v.Constant() {
			b := make([]byte, v.Size())
			if v.Get(b) == nil {
				fmt.Fprintf(h, " %s=%x", name, b)
			}
		}
	}
	var out [sha256.Size]byte
	copy(out[:], h.Sum(nil))
	return out
}

// adopt takes the pinned links when the pinned programs are this build's
// and every map was carried over as it was.
func (s *Sensor) adopt() bool {
	if s.pins == nil || s.pins.meta == nil || s.pins.meta.Programs != s.programs {
		return false
	}
	for name := range s.fresh {
		if isDataMap(name) {
			return false
		}
	}
	links, err := s.pins.pinnedLinks()
	if err != nil || len(links) == 0 {
		for _, l := range links {
			l.Close()
		}
		return false
	}
	for _, name := range sortedKeys(links) {
		s.links = append(s.links, links[name])
		s.hooks = append(s.hooks, Hook{Program: name, Hook: "pinned", Attached: true})
	}
	s.state = StateAdopted
	return true
}

// loadPrograms loads the programs on the maps chosen.
func (s *Sensor) loadPrograms(spec *ebpf.CollectionSpec) error {
	if s.pins != nil && s.pins.meta != nil {
		s.state = StateUpgrade
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: s.mapsByName()})
	if err != nil {
		return &LoadError{err}
	}
	s.progs, s.specs = coll.Programs, spec.Programs
	coll.Programs = nil
	coll.Close() // its maps are clones of s.maps
	return nil
}

// mapsByName lists the loaded maps by their names in the object.
func (s *Sensor) mapsByName() map[string]*ebpf.Map {
	out := make(map[string]*ebpf.Map)
	v := reflect.ValueOf(s.maps)
	t := v.Type()
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("ebpf"); tag != "" {
			if m, ok := v.Field(i).Interface().(*ebpf.Map); ok && m != nil {
				out[tag] = m
			}
		}
	}
	return out
}

// State says what this load did with what it found pinned.
func (s *Sensor) State() State { return s.state }

// configure drops the programs the tier cannot run and sets load-time
// constants from the kernel's BTF. It returns the optional hooks it dropped
// because the kernel lacks them.
func configure(spec *ebpf.CollectionSpec, tier Tier, kernelBTF *btf.Spec) ([]Hook, error) {
	var skipped []Hook
	for _, name := range sortedKeys(spec.Programs) {
		ps := spec.Programs[name]
		if ps.Type != ebpf.LSM {
			continue
		}
		if tier != TierFull {
			delete(spec.Programs, name)
			continue
		}
		if optionalHook(ps.AttachTo) && !hasFunc(kernelBTF, "bpf_lsm_"+ps.AttachTo) {
			delete(spec.Programs, name)
			skipped = append(skipped, Hook{Program: name, Hook: ps.SectionName, Error: skippedReason(ps.AttachTo)})
		}
	}
	if err := spec.Variables["cfg_files_from_lsm"].Set(boolU32(tier == TierFull)); err != nil {
		return nil, fmt.Errorf("set cfg_files_from_lsm: %w", err)
	}
	if err := spec.Variables["cfg_exec_from_lsm"].Set(boolU32(tier == TierFull)); err != nil {
		return nil, fmt.Errorf("set cfg_exec_from_lsm: %w", err)
	}
	idmap := funcParams(kernelBTF, "bpf_lsm_inode_setattr") == 3
	if err := spec.Variables["cfg_setattr_has_idmap"].Set(boolU32(idmap)); err != nil {
		return nil, fmt.Errorf("set cfg_setattr_has_idmap: %w", err)
	}
	return skipped, nil
}

// attach attaches one loaded program where its section says, and records
// the hook either way.
func (s *Sensor) attach(name string, prog *ebpf.Program, ps *ebpf.ProgramSpec) (link.Link, error) {
	var (
		l   link.Link
		err error
	)
	hook := ps.SectionName
	switch ps.Type {
	case ebpf.Tracing:
		l, err = link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ps.AttachType})
	case ebpf.LSM:
		l, err = link.AttachLSM(link.LSMOptions{Program: prog})
	case ebpf.CGroupSockAddr, ebpf.CGroupSockopt, ebpf.CGroupSKB, ebpf.CGroupSock:
		l, err = link.AttachCgroup(link.CgroupOptions{Path: s.cgroupRoot, Attach: ps.AttachType, Program: prog})
	default:
		err = fmt.Errorf("no attach method for program type %s", ps.Type)
	}
	if err != nil {
		s.hooks = append(s.hooks, Hook{Program: name, Hook: hook, Error: err.Error()})
		return nil, fmt.Errorf("attach %s (%s): %w", name, hook, err)
	}
	s.hooks = append(s.hooks, Hook{Program: name, Hook: hook, Attached: true})
	return l, nil
}

// Tier returns the tier the programs were loaded for.
func (s *Sensor) Tier() Tier { return s.tier }

// Hooks lists every program and whether it is attached.
func (s *Sensor) Hooks() []Hook { return append([]Hook(nil), s.hooks...) }

// Close releases the process's hold on the programs and maps. What is
// pinned stays attached and kept; without pins everything is detached and
// freed. It is safe to call twice.
func (s *Sensor) Close() error {
	var errs []error
	for _, l := range s.links {
		errs = append(errs, l.Close())
	}
	s.links = nil
	for _, p := range s.progs {
		p.Close()
	}
	s.progs = nil
	errs = append(errs, s.maps.Close())
	s.maps = bpf.SensorMaps{}
	if s.oldRing != nil {
		s.oldRing.Close()
		s.oldRing = nil
	}
	if s.pins != nil {
		errs = append(errs, s.pins.close())
		s.pins = nil
	}
	return errors.Join(errs...)
}

func hasFunc(spec *btf.Spec, name string) bool {
	var fn *btf.Func
	return spec.TypeByName(name, &fn) == nil
}

func funcParams(spec *btf.Spec, name string) int {
	var fn *btf.Func
	if spec.TypeByName(name, &fn) != nil {
		return -1
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok {
		return -1
	}
	return len(proto.Params)
}

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
