package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/ringfence/ringfence/bpf"
	"github.com/ringfence/ringfence/enforce"
)

// The kernel side of the policy engine: Sensor implements enforce.Kernel.
var _ enforce.Kernel = (*Sensor)(nil)

const allowKeyLen = len(bpf.SensorAllowKey{}.Path)

// PutPolicy writes a compiled policy and its writable paths. The paths go
// first: the policy entry makes them count.
func (s *Sensor) PutPolicy(id uint32, p enforce.KernelPolicy, allow []enforce.AllowWrite) error {
	for _, a := range allow {
		k, err := allowKey(id, a)
		if err != nil {
			return err
		}
		if err := s.maps.AllowWrites.Update(&k, uint32(1), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("policy %d: allowWrites %q: %w", id, a.Path, err)
		}
	}
	var v bpf.SensorPolicy
	if p.ReadOnly {
		v.Flags |= uint32(bpf.SensorPolicyFlagPOLICY_READ_ONLY)
		v.RoAction = uint16(p.ReadOnlyAction)
	}
	if p.Bind {
		v.Flags |= uint32(bpf.SensorPolicyFlagPOLICY_BIND)
		v.BindAction = uint16(p.BindAction)
		if len(p.Ports) > len(v.Ports) || len(p.Interfaces) > len(v.Ifaces) {
			return fmt.Errorf("policy %d: %d port ranges and %d interfaces, at most %d and %d", id, len(p.Ports), len(p.Interfaces), len(v.Ports), len(v.Ifaces))
		}
		v.Nports = uint32(len(p.Ports))
		for i, r := range p.Ports {
			v.Ports[i].From, v.Ports[i].To = r.From, r.To
		}
		v.Nifaces = uint32(len(p.Interfaces))
		for i, name := range p.Interfaces {
			if len(name) >= len(v.Ifaces[i]) {
				return fmt.Errorf("policy %d: interface name %q too long", id, name)
			}
			cString(v.Ifaces[i][:], name)
		}
	}
	if err := s.maps.Policies.Update(id, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("policy %d: %w", id, err)
	}
	return nil
}

// DeletePolicy removes a policy and its writable paths.
func (s *Sensor) DeletePolicy(id uint32, allow []enforce.AllowWrite) error {
	errs := []error{ignoreMissing(s.maps.Policies.Delete(id))}
	for _, a := range allow {
		k, err := allowKey(id, a)
		if err == nil {
			err = ignoreMissing(s.maps.AllowWrites.Delete(&k))
		}
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete policy %d: %w", id, err)
	}
	return nil
}

func allowKey(id uint32, a enforce.AllowWrite) (bpf.SensorAllowKey, error) {
	var k bpf.SensorAllowKey
	n := len(a.Path)
	if !a.Prefix {
		n++ // the NUL: an exact path matches only itself
	}
	if n > allowKeyLen {
		return k, fmt.Errorf("allowWrites %q: longer than %d bytes", a.Path, allowKeyLen-1)
	}
	k.Prefixlen = uint32(32 + 8*n)
	k.Policy = id
	for i := 0; i < len(a.Path); i++ {
		k.Path[i] = int8(a.Path[i])
	}
	return k, nil
}

// PutMember writes a container's entry in one update.
func (s *Sensor) PutMember(cgroup uint64, m enforce.Member) error {
	var v bpf.SensorMember
	if len(m.Policies) > len(v.Ids) {
		return fmt.Errorf("cgroup %d: %d policies, at most %d", cgroup, len(m.Policies), len(v.Ids))
	}
	v.Owner = m.Owner
	if m.ReadOnly {
		v.Flags |= uint32(bpf.SensorPolicyFlagPOLICY_READ_ONLY)
	}
	if m.Bind {
		v.Flags |= uint32(bpf.SensorPolicyFlagPOLICY_BIND)
	}
	v.N = uint32(len(m.Policies))
	copy(v.Ids[:], m.Policies)
	v.ExecPolicy, v.ExecRule, v.ExecAction = m.ExecPolicy, uint16(m.ExecRule), uint16(m.ExecAction)
	if m.UDP4.Is4() {
		v.UdpFlags |= uint32(bpf.SensorUdpFlagUDP_V4)
		v.UdpV4 = binary.NativeEndian.Uint32(m.UDP4.AsSlice())
	}
	if m.UDP6.Is6() {
		v.UdpFlags |= uint32(bpf.SensorUdpFlagUDP_V6)
		v.UdpV6 = m.UDP6.As16()
	}
	if err := s.maps.Members.Update(cgroup, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("cgroup %d: rules: %w", cgroup, err)
	}
	return nil
}

// DeleteMember removes a container's entry.
func (s *Sensor) DeleteMember(cgroup uint64) error {
	return ignoreMissing(s.maps.Members.Delete(cgroup))
}

// Members counts the entries of the members map (containers under a
// policy, and cgroups created below them).
func (s *Sensor) Members() (int, error) {
	var (
		k uint64
		v bpf.SensorMember
		n int
	)
	it := s.maps.Members.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	return n, it.Err()
}

func addrKey(cgroup uint64, policy uint32, a netip.Addr) bpf.SensorAddrKey {
	return bpf.SensorAddrKey{Cgroup: cgroup, Policy: policy, Addr: netip.AddrFrom16(a.As16()).As16()}
}

// PutBindAddr allows a container to accept traffic on a under policy.
func (s *Sensor) PutBindAddr(cgroup uint64, policy uint32, a netip.Addr) error {
	k := addrKey(cgroup, policy, a)
	if err := s.maps.BindAddrs.Update(&k, uint32(1), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("cgroup %d: allow address %s: %w", cgroup, a, err)
	}
	return nil
}

// DeleteBindAddr takes that back.
func (s *Sensor) DeleteBindAddr(cgroup uint64, policy uint32, a netip.Addr) error {
	k := addrKey(cgroup, policy, a)
	return ignoreMissing(s.maps.BindAddrs.Delete(&k))
}

// PutBindIfindex allows binding a container's sockets to interface ifindex.
func (s *Sensor) PutBindIfindex(cgroup uint64, policy uint32, ifindex uint32) error {
	k := bpf.SensorIfindexKey{Cgroup: cgroup, Policy: policy, Ifindex: ifindex}
	if err := s.maps.BindIfindexes.Update(&k, uint32(1), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("cgroup %d: allow interface %d: %w", cgroup, ifindex, err)
	}
	return nil
}

// DeleteBindIfindex takes that back.
func (s *Sensor) DeleteBindIfindex(cgroup uint64, policy uint32, ifindex uint32) error {
	k := bpf.SensorIfindexKey{Cgroup: cgroup, Policy: policy, Ifindex: ifindex}
	return ignoreMissing(s.maps.BindIfindexes.Delete(&k))
}

const rootPathLen = len(bpf.SensorRootKey{}.Path)

// rootKey is the key of a registered root: its device, and its path with a
// final '/', as a prefix of the paths of the objects below it.
func rootKey(r enforce.RootFS) (bpf.SensorRootKey, int, error) {
	var k bpf.SensorRootKey
	p := path.Clean("/" + r.Path)
	if p != "/" {
		p += "/"
	}
	if len(p) > rootPathLen {
		return k, 0, fmt.Errorf("root filesystem %q: longer than %d bytes", r.Path, rootPathLen)
	}
	// An object too deep to walk whole is placed by the topmost names of
	// its path, MAX_DEPTH of them: a root below those could hold it unseen.
	if names := strings.Count(p, "/") - 1; names > int(bpf.SensorAbiLimitMAX_DEPTH) {
		return k, 0, fmt.Errorf("root filesystem %q: %d names deep, more than %d", r.Path, names, bpf.SensorAbiLimitMAX_DEPTH)
	}
	k.Prefixlen = uint32(32 + 8*len(p))
	k.Dev = r.Dev
	for i := range len(p) {
		k.Path[i] = int8(p[i])
	}
	return k, len(p), nil
}

// PutRoot registers the root filesystem of the container of cgroup: the
// read-only rule judges every write to an object below it by that
// container's rules.
func (s *Sensor) PutRoot(cgroup uint64, r enforce.RootFS) error {
	k, n, err := rootKey(r)
	if err != nil {
		return fmt.Errorf("cgroup %d: %w", cgroup, err)
	}
	v := bpf.SensorRootValue{Owner: cgroup, RootLen: uint32(n)}
	s.rootsMu.Lock()
	defer s.rootsMu.Unlock()
	if err := s.maps.RoRoots.Update(&k, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("cgroup %d: root filesystem: %w", cgroup, err)
	}
	if err := s.maps.RoDevs.Update(r.Dev, uint32(s.devRoots[r.Dev]+1), ebpf.UpdateAny); err != nil {
		s.maps.RoRoots.Delete(&k)
		return fmt.Errorf("cgroup %d: root filesystem device: %w", cgroup, err)
	}
	s.devRoots[r.Dev]++
	return nil
}

// DeleteRoot takes a registered root back.
func (s *Sensor) DeleteRoot(cgroup uint64, r enforce.RootFS) error {
	k, _, err := rootKey(r)
	if err != nil {
		return fmt.Errorf("cgroup %d: %w", cgroup, err)
	}
	s.rootsMu.Lock()
	defer s.rootsMu.Unlock()
	var errs []error
	errs = append(errs, ignoreMissing(s.maps.RoRoots.Delete(&k)))
	if s.devRoots[r.Dev] <= 1 {
		delete(s.devRoots, r.Dev)
		errs = append(errs, ignoreMissing(s.maps.RoDevs.Delete(r.Dev)))
	} else {
		s.devRoots[r.Dev]--
		errs = append(errs, s.maps.RoDevs.Update(r.Dev, uint32(s.devRoots[r.Dev]), ebpf.UpdateAny))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cgroup %d: delete root filesystem: %w", cgroup, err)
	}
	return nil
}

// SuppressedViolation is the rate limiter's count of one kind of identical
// violations: container, policy, rule, operation and object (hashed).
type SuppressedViolation struct {
	Cgroup uint64
	Policy uint32
	Rule   enforce.Rule
	Op     uint16
	Object uint32
	Action enforce.Action
	Total  uint64
}

// SuppressedViolations lists the rate limiter's entries with a count.
func (s *Sensor) SuppressedViolations() ([]SuppressedViolation, error) {
	var (
		k   bpf.SensorViolationKey
		v   bpf.SensorViolationState
		out []SuppressedViolation
	)
	it := s.maps.ViolationLimits.Iterate()
	for it.Next(&k, &v) {
		if v.SuppressedTotal > 0 {
			out = append(out, SuppressedViolation{Cgroup: k.Cgroup, Policy: k.Policy, Rule: enforce.Rule(k.Rule), Op: k.Op, Object: k.Object, Action: enforce.Action(v.Action), Total: v.SuppressedTotal})
		}
	}
	return out, it.Err()
}

func ignoreMissing(err error) error {
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}

// BindAddrs lists the addresses a container's sockets may accept traffic
// on, over all its policies.
func (s *Sensor) BindAddrs(cgroup uint64) ([]netip.Addr, error) {
	var (
		k   bpf.SensorAddrKey
		v   uint32
		out []netip.Addr
	)
	it := s.maps.BindAddrs.Iterate()
	for it.Next(&k, &v) {
		if k.Cgroup == cgroup {
			out = append(out, netip.AddrFrom16(k.Addr).Unmap())
		}
	}
	return out, it.Err()
}

// MaxPolicyID returns the highest policy id in the kernel: a daemon that
// adopts pinned state numbers its policies above it, so that the set in
// force is never written over while containers are under it.
func (s *Sensor) MaxPolicyID() (uint32, error) {
	var (
		id  uint32
		max uint32
		v   bpf.SensorPolicy
	)
	it := s.maps.Policies.Iterate()
	for it.Next(&id, &v) {
		if id > max {
			max = id
		}
	}
	return max, it.Err()
}

// Sweep deletes what no container needs any more: policies (with their
// writable paths) neither in keep nor named by a member entry, and allowed
// addresses and interfaces of a (cgroup, policy) its member does not name.
// What a daemon before this one wrote is swept once its containers are
// under the new set; a container nobody named keeps its old rules.
func (s *Sensor) Sweep(keep map[uint32]bool) error {
	inUse := make(map[uint32]bool, len(keep))
	for id := range keep {
		inUse[id] = true
	}
	named := make(map[[2]uint64]bool) // (cgroup, policy) a member names
	var (
		cg uint64
		m  bpf.SensorMember
	)
	it := s.maps.Members.Iterate()
	for it.Next(&cg, &m) {
		for _, id := range m.Ids[:min(int(m.N), len(m.Ids))] {
			inUse[id] = true
			named[[2]uint64{cg, uint64(id)}] = true
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("sweep: members: %w", err)
	}
	var errs []error
	errs = append(errs, s.sweepPolicies(inUse))
	errs = append(errs, sweepKeys(s.maps.BindAddrs, func(k bpf.SensorAddrKey) bool { return named[[2]uint64{k.Cgroup, uint64(k.Policy)}] }))
	errs = append(errs, sweepKeys(s.maps.BindIfindexes, func(k bpf.SensorIfindexKey) bool { return named[[2]uint64{k.Cgroup, uint64(k.Policy)}] }))
	return errors.Join(errs...)
}

// sweepPolicies deletes the policies and writable paths not in use.
func (s *Sensor) sweepPolicies(inUse map[uint32]bool) error {
	errs := []error{sweepKeys(s.maps.Policies, func(id uint32) bool { return inUse[id] })}
	errs = append(errs, sweepKeys(s.maps.AllowWrites, func(k bpf.SensorAllowKey) bool { return inUse[k.Policy] }))
	return errors.Join(errs...)
}

// sweepKeys deletes every key of m that keep refuses.
func sweepKeys[K any](m *ebpf.Map, keep func(K) bool) error {
	var stale []K
	var k K
	val := make([]byte, m.ValueSize())
	it := m.Iterate()
	for it.Next(&k, &val) {
		if !keep(k) {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("sweep %s: %w", m, err)
	}
	var errs []error
	for i := range stale {
		errs = append(errs, ignoreMissing(m.Delete(&stale[i])))
	}
	return errors.Join(errs...)
}
