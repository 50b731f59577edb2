package netif

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NSKey identifies a network namespace: the inode number of its nsfs file
// (/proc/PID/ns/net), which is also the netns inum a BPF program reads from
// task->nsproxy->net_ns->ns.inum.
type NSKey uint64

// Interface is the state of one tracked interface name.
type Interface struct {
	// Name is the tracked name, as given to Track.
	Name string
	// Index is the ifindex of the interface of that name, 0 when the
	// namespace has none.
	Index int
	// Addrs are the interface's addresses, IPv4 and IPv6 (link-local,
	// loopback and tentative ones included), sorted, without zones.
	Addrs []netip.Addr
}

// Snapshot is the state of the tracked interfaces of one network namespace.
type Snapshot struct {
	Key NSKey
	// Interfaces has one entry per tracked name, sorted by name.
	Interfaces []Interface
}

// Interface returns the state of the tracked name, and false when name is
// not tracked in this namespace.
func (s Snapshot) Interface(name string) (Interface, bool) {
	i, ok := slices.BinarySearchFunc(s.Interfaces, name, func(f Interface, n string) int {
		return cmp.Compare(f.Name, n)
	})
	if !ok {
		return Interface{}, false
	}
	return s.Interfaces[i], true
}

// Equal reports whether s and o describe the same state.
func (s Snapshot) Equal(o Snapshot) bool {
	return s.Key == o.Key && slices.EqualFunc(s.Interfaces, o.Interfaces, func(a, b Interface) bool {
		return a.Name == b.Name && a.Index == b.Index && slices.Equal(a.Addrs, b.Addrs)
	})
}

// KeyOf returns the key of the network namespace at nsPath; "" means the
// calling process's own (/proc/self/ns/net).
func KeyOf(nsPath string) (NSKey, error) {
	fd, err := unix.Open(netnsPath(nsPath), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open netns %s: %w", netnsPath(nsPath), err)
	}
	defer unix.Close(fd)
	return keyOfFD(fd, netnsPath(nsPath))
}

func netnsPath(p string) string {
	if p == "" {
		return "/proc/self/ns/net"
	}
	return p
}

// keyOfFD checks that fd is a network namespace and returns its inode.
func keyOfFD(fd int, path string) (NSKey, error) {
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		return 0, fmt.Errorf("netns %s: not a namespace file: %w", path, err)
	}
	if typ != unix.CLONE_NEWNET {
		return 0, fmt.Errorf("netns %s: not a network namespace (type %#x)", path, typ)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("stat netns %s: %w", path, err)
	}
	return NSKey(st.Ino), nil
}

// buildSnapshot puts together the listing of one namespace: the ifindex
// found for each name (absent when none) and the namespace's addresses.
func buildSnapshot(key NSKey, names []string, index map[string]int, addrs []netlink.Addr) Snapshot {
	byIndex := make(map[int][]netip.Addr)
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		byIndex[a.LinkIndex] = append(byIndex[a.LinkIndex], ip.Unmap())
	}
	s := Snapshot{Key: key, Interfaces: make([]Interface, 0, len(names))}
	for _, n := range names {
		f := Interface{Name: n, Index: index[n]}
		if f.Index != 0 {
			f.Addrs = slices.Clone(byIndex[f.Index])
			slices.SortFunc(f.Addrs, netip.Addr.Compare)
			f.Addrs = slices.Compact(f.Addrs)
		}
		s.Interfaces = append(s.Interfaces, f)
	}
	slices.SortFunc(s.Interfaces, func(a, b Interface) int { return cmp.Compare(a.Name, b.Name) })
	return s
}
