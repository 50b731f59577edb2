package netif

import (
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

func addr(index int, cidr string) netlink.Addr {
	ip, n, err := net.ParseCIDR(cidr)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return netlink.Addr{LinkIndex: index, IPNet: n}
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestBuildSnapshot(t *testing.T) {
	v4in16 := addr(2, "10.0.0.9/24")
	v4in16.IP = v4in16.IP.To16()
	cases := []struct {
		name  string
		names []string
		index map[string]int
		addrs []netlink.Addr
		want  []Interface
	}{
		{
			name:  "addresses sorted, deduplicated, other links ignored",
			names: []string{"eth0", "lo"},
			index: map[string]int{"eth0": 2, "lo": 1},
			addrs: []netlink.Addr{
				addr(2, "fe80::1/64"), addr(1, "::1/128"), addr(2, "10.0.0.2/24"),
				addr(3, "10.9.9.9/24"), addr(1, "127.0.0.1/8"), addr(2, "10.0.0.2/24"),
			},
			want: []Interface{
				{Name: "eth0", Index: 2, Addrs: addrs("10.0.0.2", "fe80::1")},
				{Name: "lo", Index: 1, Addrs: addrs("127.0.0.1", "::1")},
			},
		},
		{
			name:  "absent link has index 0 and no addresses",
			names: []string{"eth0"},
			addrs: []netlink.Addr{addr(0, "10.0.0.1/24")},
			want:  []Interface{{Name: "eth0"}},
		},
		{
			name:  "IPv4 given in 16 bytes is unmapped",
			names: []string{"eth0"},
			index: map[string]int{"eth0": 2},
			addrs: []netlink.Addr{v4in16, {LinkIndex: 2}},
			want:  []Interface{{Name: "eth0", Index: 2, Addrs: addrs("10.0.0.9")}},
		},
		{
			name:  "link without address",
			names: []string{"eth1", "eth0"},
			index: map[string]int{"eth0": 2, "eth1": 3},
			addrs: []netlink.Addr{addr(2, "10.0.0.2/24")},
			want: []Interface{
				{Name: "eth0", Index: 2, Addrs: addrs("10.0.0.2")},
				{Name: "eth1", Index: 3},
			},
		},
		{name: "no names", want: []Interface{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := buildSnapshot(7, c.names, c.index, c.addrs)
			want := Snapshot{Key: 7, Interfaces: c.want}
			if got.Key != 7 || !got.Equal(want) {
				t.Fatalf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestSnapshotInterfaceAndEqual(t *testing.T) {
	s := buildSnapshot(1, []string{"lo", "eth0", "wg0"}, map[string]int{"lo": 1, "eth0": 2},
		[]netlink.Addr{addr(2, "10.0.0.2/24")})
	for _, name := range []string{"eth0", "lo", "wg0"} {
		if f, ok := s.Interface(name); !ok || f.Name != name {
			t.Errorf("Interface(%q) = %+v, %v", name, f, ok)
		}
	}
	if _, ok := s.Interface("eth1"); ok {
		t.Error("Interface found an untracked name")
	}
	other := buildSnapshot(1, []string{"lo", "eth0", "wg0"}, map[string]int{"lo": 1, "eth0": 2},
		[]netlink.Addr{addr(2, "10.0.0.3/24")})
	moved := buildSnapshot(1, []string{"lo", "eth0", "wg0"}, map[string]int{"lo": 1, "eth0": 4},
		[]netlink.Addr{addr(4, "10.0.0.2/24")})
	for name, o := range map[string]Snapshot{"address": other, "index": moved, "key": {Key: 2, Interfaces: s.Interfaces}} {
		if s.Equal(o) {
			t.Errorf("snapshots differing by %s are Equal", name)
		}
	}
	if !s.Equal(buildSnapshot(1, []string{"wg0", "eth0", "lo"}, map[string]int{"lo": 1, "eth0": 2},
		[]netlink.Addr{addr(2, "10.0.0.2/24"), addr(9, "10.0.0.9/24")})) {
		t.Error("equal snapshots are not Equal")
	}
}
