package kernel

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/cilium/ebpf"

	"github.com/ringfence/ringfence/bpf"
	"github.com/ringfence/ringfence/enforce"
)

// DropCause names each kernel-side loss counter, in drops-map order.
func DropCause(i int) string {
	switch bpf.SensorDropCause(i) {
	case bpf.SensorDropCauseDROP_RING_EXEC:
		return "ring_full_exec"
	case bpf.SensorDropCauseDROP_RING_EXIT:
		return "ring_full_exit"
	case bpf.SensorDropCauseDROP_RING_FILE:
		return "ring_full_file"
	case bpf.SensorDropCauseDROP_RING_BIND:
		return "ring_full_bind"
	case bpf.SensorDropCauseDROP_SYSCALL_MAP_FULL:
		return "syscall_map_full"
	case bpf.SensorDropCauseDROP_WATCH_MAP_FULL:
		return "watch_map_full"
	case bpf.SensorDropCauseDROP_RING_VIOLATION:
		return "ring_full_violation"
	case bpf.SensorDropCauseDROP_NO_RECORD:
		return "no_working_record"
	}
	return fmt.Sprintf("cause_%d", i)
}

// Watch makes the kernel report on processes in the cgroup with this id and,
// from now on, in the cgroups created below it.
func (s *Sensor) Watch(cgroupID uint64) error {
	if err := s.maps.Watched.Update(cgroupID, uint32(1), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("watch cgroup %d: %w", cgroupID, err)
	}
	return nil
}

// Unwatch stops reporting on a cgroup. Unwatching an unwatched cgroup is not an error.
func (s *Sensor) Unwatch(cgroupID uint64) error {
	err := s.maps.Watched.Delete(cgroupID)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unwatch cgroup %d: %w", cgroupID, err)
	}
	return nil
}

// Watched lists the watched cgroup ids, including those the kernel added
// for child cgroups.
func (s *Sensor) Watched() ([]uint64, error) {
	var (
		id   uint64
		flag uint32
		ids  []uint64
	)
	it := s.maps.Watched.Iterate()
	for it.Next(&id, &flag) {
		ids = append(ids, id)
	}
	return ids, it.Err()
}

// Drops returns the kernel-side loss counters by cause, summed over CPUs.
func (s *Sensor) Drops() (map[string]uint64, error) {
	m := s.maps.Drops
	out := make(map[string]uint64, m.MaxEntries())
	for i := uint32(0); i < m.MaxEntries(); i++ {
		var perCPU []uint64
		if err := m.Lookup(i, &perCPU); err != nil {
			return nil, fmt.Errorf("read drop counter %d: %w", i, err)
		}
		var sum uint64
		for _, v := range perCPU {
			sum += v
		}
		out[DropCause(int(i))] = sum
	}
	return out, nil
}

// SyscallKey identifies one syscall counter.
type SyscallKey struct {
	CgroupID uint64
	Nr       uint32
}

// syscallKeyIA32 marks the counter of an ia32 syscall (a 32-bit process,
// or int 0x80): its number is from the ia32 table.
const syscallKeyIA32 = 1 << 31

// SyscallName names a counter's syscall as the syscalls event does: the
// x86-64 number ("257"), or "ia32:" and the ia32 number ("ia32:5").
func SyscallName(nr uint32) string {
	if nr&syscallKeyIA32 != 0 {
		return "ia32:" + strconv.FormatUint(uint64(nr&^syscallKeyIA32), 10)
	}
	return strconv.FormatUint(uint64(nr), 10)
}

// SyscallCounts returns the cumulative syscall counts of watched cgroups.
func (s *Sensor) SyscallCounts() (map[SyscallKey]uint64, error) {
	var (
		k      bpf.SensorSyscallKey
		perCPU []uint64
	)
	out := make(map[SyscallKey]uint64)
	it := s.maps.SyscallCounts.Iterate()
	for it.Next(&k, &perCPU) {
		var sum uint64
		for _, v := range perCPU {
			sum += v
		}
		out[SyscallKey{CgroupID: k.CgroupId, Nr: k.Nr}] = sum
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read syscall counts: %w", err)
	}
	return out, nil
}

// ForgetSyscalls deletes the counters of a cgroup that is no longer watched.
func (s *Sensor) ForgetSyscalls(keys []SyscallKey) error {
	var errs []error
	for _, k := range keys {
		key := bpf.SensorSyscallKey{CgroupId: k.CgroupID, Nr: k.Nr}
		if err := s.maps.SyscallCounts.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// AddRuntimeParent marks a cgroup under which the container runtime creates
// containers: cgroups created below it are watched, and their first exec is
// held, until Release.
func (s *Sensor) AddRuntimeParent(cgroupID uint64) error {
	if err := s.maps.RuntimeParents.Update(cgroupID, uint32(1), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("runtime parent %d: %w", cgroupID, err)
	}
	return nil
}

// MaxParentParts and MaxParentName bound a runtime parent that the kernel
// recognises by name when it is created: its path parts still missing, and
// the length of each.
const (
	MaxParentParts = 8
	MaxParentName  = 63
)

// ExpectRuntimeParent makes the kernel mark configured runtime parent number
// dir as one the moment it is created: parts are its path parts not created
// yet, the first of them a child of the existing cgroup ancestor. So the
// first container of a new runtime namespace is held like the others.
func (s *Sensor) ExpectRuntimeParent(dir uint32, ancestor uint64, parts []string) error {
	if len(parts) == 0 || len(parts) > MaxParentParts {
		return fmt.Errorf("runtime parent %d: %d missing path parts, want 1 to %d", dir, len(parts), MaxParentParts)
	}
	for d, p := range parts {
		if len(p) == 0 || len(p) > MaxParentName {
			return fmt.Errorf("runtime parent %d: path part %q: want 1 to %d bytes", dir, p, MaxParentName)
		}
		var part bpf.SensorParentPart
		cString(part.Name[:], p)
		if err := s.maps.RuntimeParentParts.Update(dir*MaxParentParts+uint32(d), &part, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("runtime parent %d: %w", dir, err)
		}
	}
	key := bpf.SensorParentName{Parent: ancestor}
	cString(key.Name[:], parts[0])
	step := bpf.SensorParentStep{Dir: dir, Depth: 0, Last: uint32(len(parts) - 1)}
	if err := s.maps.RuntimeParentNames.Update(&key, &step, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("runtime parent %d: %w", dir, err)
	}
	return nil
}

// cString copies s into a zeroed C char array.
func cString(dst []int8, s string) {
	for i := range min(len(dst)-1, len(s)) {
		dst[i] = int8(s[i])
	}
}

// RuntimeParents lists the cgroups marked as runtime parents, by userspace
// or by the kernel when one was created.
func (s *Sensor) RuntimeParents() ([]uint64, error) {
	return cgroupKeys(s.maps.RuntimeParents)
}

// Owner returns the container cgroup that a cgroup made inside a container
// belongs to.
func (s *Sensor) Owner(cgroupID uint64) (uint64, bool) {
	var owner uint64
	if err := s.maps.Owners.Lookup(cgroupID, &owner); err != nil {
		return 0, false
	}
	return owner, true
}

// Owned lists the cgroups made inside containers.
func (s *Sensor) Owned() ([]uint64, error) { return cgroupKeys(s.maps.Owners) }

// cgroupKeys lists the keys of a map keyed by cgroup id.
func cgroupKeys(m *ebpf.Map) ([]uint64, error) {
	var (
		id  uint64
		ids []uint64
	)
	val := make([]byte, m.ValueSize())
	it := m.Iterate()
	for it.Next(&id, &val) {
		ids = append(ids, id)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", m, err)
	}
	return ids, nil
}

// Release ends the hold on a container cgroup: its execs run freely from now
// on. Releasing a cgroup that is not held is not an error.
func (s *Sensor) Release(cgroupID uint64) error {
	err := s.maps.Pending.Delete(cgroupID)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("release cgroup %d: %w", cgroupID, err)
	}
	return nil
}

// Pending lists the container cgroups not released yet.
func (s *Sensor) Pending() ([]uint64, error) { return cgroupKeys(s.maps.Pending) }

// StopHolding makes the kernel hold no more execs: it forgets the runtime
// parents, those it would recognise by name, and every pending cgroup.
// Called when the sensor stops, before its last events are read, so no
// process is stopped with nobody left to release it.
func (s *Sensor) StopHolding() error {
	var errs []error
	for _, m := range []*ebpf.Map{s.maps.RuntimeParentNames, s.maps.RuntimeParents, s.maps.Pending} {
		errs = append(errs, clearMap(m))
	}
	return errors.Join(errs...)
}

// MapSizes counts, by map name, the entries of the maps that follow
// containers and cgroups: each returns to its size when they are gone.
// Exact while they do not change; bounded by each map's capacity while
// they do.
func (s *Sensor) MapSizes() (map[string]int, error) {
	names := append(MapsSized(), "runtime_parents", "runtime_parent_names")
	out := make(map[string]int, len(names))
	byName := s.mapsByName()
	for _, name := range names {
		keys, err := keysOf(byName[name])
		if err != nil {
			return nil, err
		}
		out[name] = len(keys)
	}
	return out, nil
}

// MapCapacities returns the capacity of each map MapSizes counts.
func (s *Sensor) MapCapacities() map[string]int {
	out := make(map[string]int)
	byName := s.mapsByName()
	for _, name := range append(MapsSized(), "runtime_parents", "runtime_parent_names") {
		out[name] = int(byName[name].MaxEntries())
	}
	return out
}

// keysOf lists the keys of a hash map: at most its capacity, as a walk
// restarts from the first key when the one it stands on is deleted meanwhile.
func keysOf(m *ebpf.Map) ([][]byte, error) {
	var keys [][]byte
	var prev any // nil: from the first key
	for len(keys) < int(m.MaxEntries()) {
		next, err := m.NextKeyBytes(prev)
		if err != nil {
			return nil, fmt.Errorf("walk %s: %w", m.String(), err)
		}
		if next == nil {
			break
		}
		keys = append(keys, next)
		prev = next
	}
	return keys, nil
}

// clearMap deletes every entry of a hash map.
func clearMap(m *ebpf.Map) error {
	keys, err := keysOf(m)
	if err != nil {
		return err
	}
	var errs []error
	for _, k := range keys {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Exempt makes the cgroups given ones no policy judges and no hold stops,
// with every cgroup made below them from then on (the kernel marks those):
// the sensor's own. Entries go with their cgroups.
func (s *Sensor) Exempt(cgroups ...uint64) error {
	for _, cg := range cgroups {
		if err := s.maps.Exempt.Update(cg, uint32(1), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("exempt cgroup %d: %w", cg, err)
		}
	}
	return nil
}

// IsExempt reports whether cgroupID is exempt (Exempt).
func (s *Sensor) IsExempt(cgroupID uint64) bool {
	var v uint32
	return s.maps.Exempt.Lookup(cgroupID, &v) == nil
}

// Exempted lists the exempt cgroups.
func (s *Sensor) Exempted() ([]uint64, error) {
	return cgroupKeys(s.maps.Exempt)
}

// DropsReported returns the loss counts the last daemon said it reported
// (zero the first time): the next report says what was lost since.
func (s *Sensor) DropsReported() (map[string]uint64, error) {
	out := make(map[string]uint64)
	for i := uint32(0); i < s.maps.DropsReported.MaxEntries(); i++ {
		var n uint64
		if err := s.maps.DropsReported.Lookup(i, &n); err != nil {
			return nil, fmt.Errorf("read reported drops: %w", err)
		}
		out[DropCause(int(i))] = n
	}
	return out, nil
}

// SetDropsReported records the loss counts just reported.
func (s *Sensor) SetDropsReported(reported map[string]uint64) error {
	for i := uint32(0); i < s.maps.DropsReported.MaxEntries(); i++ {
		if err := s.maps.DropsReported.Update(i, reported[DropCause(int(i))], ebpf.UpdateAny); err != nil {
			return fmt.Errorf("record reported drops: %w", err)
		}
	}
	return nil
}

// ViolationCounts returns the violations the kernel counted, by rule and
// action ("readOnlyRootFilesystem/deny"), reported or not: they go on
// while no daemon reads the ring.
func (s *Sensor) ViolationCounts() (map[string]uint64, error) {
	out := make(map[string]uint64)
	for i := uint32(0); i < s.maps.ViolationCounts.MaxEntries(); i++ {
		var perCPU []uint64
		if err := s.maps.ViolationCounts.Lookup(i, &perCPU); err != nil {
			return nil, fmt.Errorf("read violation counts: %w", err)
		}
		var sum uint64
		for _, v := range perCPU {
			sum += v
		}
		if sum > 0 {
			out[enforce.Rule(i/4).String()+"/"+enforce.Action(i%4).String()] = sum
		}
	}
	return out, nil
}

// FileID is a file as an object: its device, in the kernel's encoding, and
// its inode.
type FileID struct {
	Dev uint32
	Ino uint64
}

// SetRuntimeExes makes ids the container runtime's binaries on the host:
// the kernel lets an exec of one of them as "<argv0> init" (the runtime
// re-executing itself inside a new container's cgroup) run without being
// held, daemon or not. The set is pinned with the rest.
func (s *Sensor) SetRuntimeExes(ids []FileID) error {
	m := s.maps.RuntimeExes
	if len(ids) > int(m.MaxEntries()) {
		return fmt.Errorf("%d runtime binaries: at most %d", len(ids), m.MaxEntries())
	}
	want := make(map[bpf.SensorFileId]bool, len(ids))
	for _, id := range ids {
		k := bpf.SensorFileId{Ino: id.Ino, Dev: id.Dev}
		want[k] = true
		if err := m.Update(&k, uint32(1), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("runtime binary %d:%d: %w", id.Dev, id.Ino, err)
		}
	}
	var k bpf.SensorFileId
	var stale []bpf.SensorFileId
	for it := m.Iterate(); it.Next(&k, new(uint32)); {
		if !want[k] {
			stale = append(stale, k)
		}
	}
	for _, k := range stale {
		if err := m.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("runtime binary %d:%d: %w", k.Dev, k.Ino, err)
		}
	}
	return nil
}

// RuntimeExes lists the runtime binaries SetRuntimeExes recorded.
func (s *Sensor) RuntimeExes() ([]FileID, error) {
	var out []FileID
	var k bpf.SensorFileId
	it := s.maps.RuntimeExes.Iterate()
	for it.Next(&k, new(uint32)) {
		out = append(out, FileID{Dev: k.Dev, Ino: k.Ino})
	}
	return out, it.Err()
}
