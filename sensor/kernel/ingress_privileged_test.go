package kernel

import (
	"encoding/binary"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ringfence/ringfence/bpf"
	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/hostfs"
)

// TestPrivilegedIngressHeaders runs the ingress program on packets built
// here (BPF_PROG_TEST_RUN: the packet's socket is in this test's cgroup),
// under a rule allowing fd00::1 and 10.0.0.1 on port 80: connection
// requests elsewhere are dropped whatever IPv6 extension headers come
// before the TCP header; what carries no TCP header, or its later
// fragments, is not its business.
func TestPrivilegedIngressHeaders(t *testing.T) {
	s, _ := ingressRule(t)
	prog := s.progs["rf_skb_ingress"]
	allowed6, other6 := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	hbh := []byte{6, 0, 1, 4, 0, 0, 0, 0}      // hop-by-hop, next TCP, one PadN
	dest := []byte{43, 0, 1, 4, 0, 0, 0, 0}    // destination options, next routing
	route := []byte{6, 0, 0, 0, 0, 0, 0, 0}    // routing type 0, no segments left, next TCP
	frag0 := []byte{6, 0, 0, 0, 0, 0, 0, 1}    // first fragment, more follow, next TCP
	frag1 := []byte{6, 0, 0, 0x10, 0, 0, 0, 1} // at offset 16: no TCP header in it
	for _, c := range []struct {
		name string
		pkt  []byte
		pass bool
	}{
		{"v6 syn to an allowed address", ipv6(allowed6, 6, nil, syn(80)), true},
		{"v6 syn elsewhere", ipv6(other6, 6, nil, syn(80)), false},
		{"v6 syn to another port", ipv6(allowed6, 6, nil, syn(81)), false},
		{"v6 hop-by-hop then syn elsewhere", ipv6(other6, 0, hbh, syn(80)), false},
		{"v6 two headers then syn elsewhere", ipv6(other6, 60, append(append([]byte{}, dest...), route...), syn(80)), false},
		{"v6 first fragment, syn elsewhere", ipv6(other6, 44, frag0, syn(80)), false},
		{"v6 later fragment", ipv6(other6, 44, frag1, syn(80)), true},
		{"v6 hop-by-hop then syn to an allowed address", ipv6(allowed6, 0, hbh, syn(80)), true},
		{"v6 not a syn", ipv6(other6, 0, hbh, ack(80)), true},
		{"v4 syn elsewhere", ipv4(netip.MustParseAddr("10.0.0.2"), syn(80)), false},
		{"v4 syn to an allowed address", ipv4(netip.MustParseAddr("10.0.0.1"), syn(80)), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ret, err := prog.Run(&ebpf.RunOptions{Data: c.pkt})
			if err != nil {
				t.Fatal(err)
			}
			if (ret == 1) != c.pass {
				t.Fatalf("verdict %d, want pass %v", ret, c.pass)
			}
		})
	}
}

// ingressRule loads the tier's programs with this test's cgroup under a
// rule allowing fd00::1 and 10.0.0.1 on port 80 (deny) and returns them
// and the cgroup.
func ingressRule(t *testing.T) (*Sensor, uint64) {
	t.Helper()
	s, _ := loaded(t)
	cg := selfCgroup(t)
	if err := s.PutPolicy(1, enforce.KernelPolicy{Bind: true, BindAction: enforce.ActionDeny, Ports: []enforce.PortRange{{From: 80, To: 80}}, Interfaces: []string{"eth0"}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"fd00::1", "10.0.0.1"} {
		if err := s.PutBindAddr(cg, 1, netip.MustParseAddr(a)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutMember(cg, enforce.Member{Owner: cg, Bind: true, Policies: []uint32{1}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.DeleteMember(cg) })
	return s, cg
}

// TestPrivilegedIngressOwnScratch: the packet program, which runs in a
// softirq that may interrupt a hook of the process context on the same
// CPU, builds its violation in a working record of its own: the process
// context's record (marked here on every CPU) is left as it was.
func TestPrivilegedIngressOwnScratch(t *testing.T) {
	s, cg := ingressRule(t)
	n, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	marked := make([]bpf.SensorReportRecord, n)
	for i := range marked {
		marked[i].Ve.PolicyId = 0xdeadbeef
		marked[i].Ve.Port = 4242
		marked[i].Ve.Hdr.CgroupId = 77
	}
	task := uint32(bpf.SensorScratchSlotSCRATCH_TASK)
	if err := s.maps.ReportRecords.Put(task, marked); err != nil {
		t.Fatal(err)
	}
	ret, err := s.progs["rf_skb_ingress"].Run(&ebpf.RunOptions{Data: ipv4(netip.MustParseAddr("10.0.0.2"), syn(80))})
	if err != nil {
		t.Fatal(err)
	}
	if ret != 0 {
		t.Fatalf("a connection request outside the rule: verdict %d, want 0 (dropped)", ret)
	}
	var got []bpf.SensorReportRecord
	if err := s.maps.ReportRecords.Lookup(task, &got); err != nil {
		t.Fatal(err)
	}
	for cpu, r := range got {
		if r.Ve.PolicyId != 0xdeadbeef || r.Ve.Port != 4242 || r.Ve.Hdr.CgroupId != 77 {
			t.Fatalf("CPU %d: the process context's record was overwritten by the packet's violation: policy %#x port %d cgroup %d",
				cpu, r.Ve.PolicyId, r.Ve.Port, r.Ve.Hdr.CgroupId)
		}
	}
	packet := uint32(bpf.SensorScratchSlotSCRATCH_PACKET)
	if err := s.maps.ReportRecords.Lookup(packet, &got); err != nil {
		t.Fatal(err)
	}
	built := false
	for _, r := range got {
		built = built || (r.Ve.Rule == uint16(bpf.SensorRuleRULE_BIND_INTERFACES) && r.Ve.Op == uint32(bpf.SensorBindOpBIND_OP_CONNECTION) && r.Ve.Port == 80 && r.Ve.Hdr.CgroupId == cg)
	}
	if !built {
		t.Fatal("no CPU's packet record holds the violation")
	}
}

// selfCgroup returns the cgroup v2 id of this process.
func selfCgroup(tb testing.TB) uint64 {
	tb.Helper()
	root, err := hostfs.Cgroup2Root()
	if err != nil {
		tb.Fatal(err)
	}
	rel, err := hostfs.CgroupOfPid("/proc", uint32(os.Getpid()))
	if err != nil {
		tb.Fatal(err)
	}
	id, err := hostfs.CgroupID(root, rel)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func syn(port uint16) []byte { return tcp(port, 0x02) }
func ack(port uint16) []byte { return tcp(port, 0x10) }

// tcp is a 20-byte TCP header to port with flags.
func tcp(port uint16, flags byte) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], 40000)
	binary.BigEndian.PutUint16(h[2:], port)
	h[12] = 5 << 4
	h[13] = flags
	return h
}

// ipv6 is an Ethernet frame of an IPv6 packet to dst: first next-header nh,
// extension headers ext, then payload.
func ipv6(dst netip.Addr, nh byte, ext, payload []byte) []byte {
	b := ethernet(0x86dd)
	h := make([]byte, 40)
	h[0] = 6 << 4
	binary.BigEndian.PutUint16(h[4:], uint16(len(ext)+len(payload)))
	h[6], h[7] = nh, 64
	src := netip.MustParseAddr("fd00::99").As16()
	copy(h[8:], src[:])
	d := dst.As16()
	copy(h[24:], d[:])
	return append(append(append(b, h...), ext...), payload...)
}

// ipv4 is an Ethernet frame of an IPv4 TCP packet to dst.
func ipv4(dst netip.Addr, payload []byte) []byte {
	b := ethernet(0x0800)
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	h[8], h[9] = 64, 6
	copy(h[12:], []byte{10, 0, 0, 99})
	d := dst.As4()
	copy(h[16:], d[:])
	return append(append(b, h...), payload...)
}

func ethernet(typ uint16) []byte {
	b := make([]byte, 14)
	binary.BigEndian.PutUint16(b[12:], typ)
	return b
}
