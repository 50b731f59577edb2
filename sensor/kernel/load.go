package kernel

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/ringfence/ringfence/bpf"
)

const probeProgram = "rf_probe_lsm"

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
}

// DefaultMapEntries is the default capacity of the maps that grow with
// containers and cgroups.
const DefaultMapEntries = 65536

// MapsSized lists the maps Options.MapEntries sizes: those a container can
// grow (by its cgroups, addresses, syscalls). At capacity, an insert fails
// and is counted (watch_map_full, syscall_map_full), or a policy cannot be
// applied and the container stays held: never a rule silently lost.
func MapsSized() []string {
	return []string{"watched", "pending", "owners", "members", "ro_roots", "ro_devs", "bind_addrs", "bind_ifindexes", "syscall_counts"}
}

// Sensor holds the loaded programs, their links and maps. Close releases all of them.
type Sensor struct {
	objs  *ebpf.Collection
	links []link.Link
	hooks []Hook
	tier  Tier

	// rootsMu guards devRoots: how many registered roots each device in
	// ro_devs has, so that it leaves the map with its last root.
	rootsMu  sync.Mutex
	devRoots map[uint32]int
}

// optionalHooks are the LSM hooks that may be missing from the kernel
// without failing the load, with the release that added them.
var optionalHooks = map[string]string{
	"file_truncate":    "6.2",
	"inode_set_acl":    "6.2",
	"inode_remove_acl": "6.2",
}

// optionalHook reports whether an LSM hook may be missing from the kernel.
func optionalHook(hook string) bool { _, ok := optionalHooks[hook]; return ok }

// skippedReason says why an optional hook is not attached.
func skippedReason(hook string) string {
	return fmt.Sprintf("optional hook absent from this kernel (no bpf_lsm_%s in its BTF; added in %s)", hook, optionalHooks[hook])
}

// LoadError is a failure of the kernel to load the programs. Its message
// carries the verifier's whole log, where there is one; it wraps the
// cause (errors.Is(err, ebpf.ErrNotSupported), say).
type LoadError struct{ Err error }

func (e *LoadError) Error() string { return fmt.Sprintf("load programs: %+v", e.Err) }
func (e *LoadError) Unwrap() error { return e.Err }

// Load loads the programs of the probed tier and attaches them. A program that
// is required for the tier and fails to load or attach fails the whole load:
// nothing stays attached then.
func Load(p Probe, opts Options) (_ *Sensor, err error) {
	spec, err := bpf.LoadSensor()
	if err != nil {
		return nil, fmt.Errorf("load sensor spec: %w", err)
	}
	delete(spec.Programs, probeProgram)
	if opts.RingBytes != 0 {
		spec.Maps["events"].MaxEntries = opts.RingBytes
	}
	entries := opts.MapEntries
	if entries == 0 {
		entries = DefaultMapEntries
	}
	for _, name := range MapsSized() {
		spec.Maps[name].MaxEntries = entries
	}
	kernelBTF, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("load kernel BTF: %w", err)
	}
	skipped, err := configure(spec, p.Tier, kernelBTF)
	if err != nil {
		return nil, err
	}

	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{})
	if err != nil {
		return nil, &LoadError{err}
	}
	// Optional hooks the kernel lacks are listed, not attached, with why.
	s := &Sensor{objs: coll, tier: p.Tier, hooks: skipped, devRoots: make(map[uint32]int)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	for _, name := range sortedKeys(coll.Programs) {
		if err := s.attach(name, coll.Programs[name], spec.Programs[name], p.Cgroup2Root); err != nil {
			return nil, err
		}
	}
	return s, nil
}

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

func (s *Sensor) attach(name string, prog *ebpf.Program, ps *ebpf.ProgramSpec, cgroupRoot string) error {
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
		l, err = link.AttachCgroup(link.CgroupOptions{Path: cgroupRoot, Attach: ps.AttachType, Program: prog})
	default:
		err = fmt.Errorf("no attach method for program type %s", ps.Type)
	}
	if err != nil {
		s.hooks = append(s.hooks, Hook{Program: name, Hook: hook, Error: err.Error()})
		return fmt.Errorf("attach %s (%s): %w", name, hook, err)
	}
	s.links = append(s.links, l)
	s.hooks = append(s.hooks, Hook{Program: name, Hook: hook, Attached: true})
	return nil
}

// Tier returns the tier the programs were loaded for.
func (s *Sensor) Tier() Tier { return s.tier }

// Hooks lists every program and whether it is attached.
func (s *Sensor) Hooks() []Hook { return append([]Hook(nil), s.hooks...) }

// Close detaches every program and closes every map. It is safe to call twice.
func (s *Sensor) Close() error {
	var errs []error
	for _, l := range s.links {
		errs = append(errs, l.Close())
	}
	s.links = nil
	if s.objs != nil {
		s.objs.Close()
		s.objs = nil
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
