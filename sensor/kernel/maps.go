package kernel

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/cilium/ebpf"

	"github.com/ringfence/ringfence/bpf"
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
	}
	return fmt.Sprintf("cause_%d", i)
}

// Watch makes the kernel report on processes in the cgroup with this id and,
// from now on, in the cgroups created below it.
func (s *Sensor) Watch(cgroupID uint64) error {
	if err := s.objs.Maps["watched"].Update(cgroupID, uint32(1), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("watch cgroup %d: %w", cgroupID, err)
	}
	return nil
}

// Unwatch stops reporting on a cgroup. Unwatching an unwatched cgroup is not an error.
func (s *Sensor) Unwatch(cgroupID uint64) error {
	err := s.objs.Maps["watched"].Delete(cgroupID)
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
	it := s.objs.Maps["watched"].Iterate()
	for it.Next(&id, &flag) {
		ids = append(ids, id)
	}
	return ids, it.Err()
}

// Drops returns the kernel-side loss counters by cause, summed over CPUs.
func (s *Sensor) Drops() (map[string]uint64, error) {
	m := s.objs.Maps["drops"]
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
	it := s.objs.Maps["syscall_counts"].Iterate()
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
		if err := s.objs.Maps["syscall_counts"].Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// AddRuntimeParent marks a cgroup under which the container runtime creates
// containers: cgroups created below it are watched, and their first exec is
// held, until Release.
func (s *Sensor) AddRuntimeParent(cgroupID uint64) error {
	if err := s.objs.Maps["runtime_parents"].Update(cgroupID, uint32(1), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("runtime parent %d: %w", cgroupID, err)
	}
	return nil
}

// Release ends the hold on a container cgroup: its execs run freely from now
// on. Releasing a cgroup that is not held is not an error.
func (s *Sensor) Release(cgroupID uint64) error {
	err := s.objs.Maps["pending"].Delete(cgroupID)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("release cgroup %d: %w", cgroupID, err)
	}
	return nil
}

// Pending lists the container cgroups not released yet.
func (s *Sensor) Pending() ([]uint64, error) {
	var (
		id, created uint64
		ids         []uint64
	)
	it := s.objs.Maps["pending"].Iterate()
	for it.Next(&id, &created) {
		ids = append(ids, id)
	}
	return ids, it.Err()
}

// StopHolding makes the kernel hold no more execs: it forgets the runtime
// parents and every pending cgroup. Called when the sensor stops, before
// its last events are read, so no process is stopped with nobody left to
// release it.
func (s *Sensor) StopHolding() error {
	var errs []error
	for _, name := range []string{"runtime_parents", "pending"} {
		m := s.objs.Maps[name]
		var keys []uint64
		var prev any // nil: from the first key
		for {
			var next uint64
			if err := m.NextKey(prev, &next); err != nil {
				if !errors.Is(err, ebpf.ErrKeyNotExist) {
					errs = append(errs, err)
				}
				break
			}
			keys = append(keys, next)
			prev = next
		}
		for _, k := range keys {
			if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
