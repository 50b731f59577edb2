package sensor

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/kernel"
	"github.com/ringfence/ringfence/test/netns"
	"github.com/ringfence/ringfence/test/testenv"
)

const bindPolicies = `
apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: bind-web}
spec:
  mode: enforce
  selector: {names: ["bind-*"]}
  bindInterfaces: {interfaces: [eth0], ports: ["8080", "9000-9001"]}
---
apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: bind-audit}
spec:
  mode: audit
  selector: {names: ["audit-*"]}
  bindInterfaces: {interfaces: [eth0], ports: ["8080"]}
`

// bindNet is a container network: a namespace whose eth0 is one end of a
// veth pair, the other end in the test's namespace.
type bindNet struct {
	ns               *netns.NS
	host             string // the host end
	hostV4, ctrV4    string
	hostV6, ctrV6    string
	withNS           []string // ctr flags that put a container in it
	hostTCP, hostUDP string   // a TCP listener and a UDP echo on the host end
}

func newBindNet(t *testing.T) *bindNet {
	t.Helper()
	n := &bindNet{ns: netns.New(t), hostV4: "10.213.0.1", ctrV4: "10.213.0.2", hostV6: "fd00:213::1", ctrV6: "fd00:213::2"}
	_, n.host = n.ns.AddVeth(t, "eth0")
	n.ns.SetUp(t, "lo")
	n.ns.AddAddr(t, "eth0", n.ctrV4+"/24")
	n.ns.AddAddr(t, "eth0", n.ctrV6+"/64")
	hl, err := netlink.LinkByName(n.host)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{n.hostV4 + "/24", n.hostV6 + "/64"} {
		a, _ := netlink.ParseAddr(p)
		a.Flags = 0x80 // IFA_F_NODAD: usable at once
		if err := netlink.AddrAdd(hl, a); err != nil {
			t.Fatalf("address %s on %s: %v", p, n.host, err)
		}
	}
	n.withNS = []string{"--with-ns", "network:" + n.ns.Path}

	l, err := net.Listen("tcp4", n.hostV4+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	n.hostTCP = l.Addr().String()
	u, err := net.ListenPacket("udp4", n.hostV4+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			k, from, err := u.ReadFrom(buf)
			if err != nil {
				return
			}
			u.WriteTo(buf[:k], from)
		}
	}()
	n.hostUDP = u.LocalAddr().String()
	return n
}

// TestPrivilegedBindInterfaces runs containers in a network namespace whose eth0
// the test made, under a policy that allows eth0's addresses on ports
// 8080 and 9000-9001, and tries every way of coming to accept traffic.
func TestPrivilegedBindInterfaces(t *testing.T) {
	testenv.Privileged(t)
	h, _ := newContainerHarness(t, bindPolicies)
	n := newBindNet(t)
	full := testenv.InVM()

	t.Run("routes", func(t *testing.T) {
		type route struct {
			name, op string
			args     []string
			want     string
		}
		v4, v6 := n.ctrV4, "["+n.ctrV6+"]"
		listenWant := "ok" // no listen hook here: its connections are dropped instead (below)
		if full {
			listenWant = "EPERM"
		}
		// What this machine offers, probed outside the container: SCTP
		// may be a module nobody loaded; 32-bit syscalls may fault. The
		// LSM hook judges a socket before its protocol is looked up, the
		// cgroup hook after: without SCTP only the full tier says EPERM.
		sctpWant := "EPERM"
		if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_SCTP); err != nil {
			if !full {
				sctpWant = unix.ErrnoName(err.(unix.Errno))
			}
			t.Logf("no SCTP on this kernel (%v): the route is closed by the kernel itself", err)
		} else {
			unix.Close(fd)
		}
		world, err := kernel.ProbeIA32()
		if err != nil {
			t.Fatal(err)
		}
		ia32Want, packetWant := "ok", "ok" // not enforceable on the cgroup-only tier: status says so
		switch {
		case full:
			ia32Want, packetWant = "EPERM", "EPERM"
		case !world.Allowed:
			ia32Want = "SIGSEGV"
		}
		t.Logf("this machine: %s", world.How)
		routes := []route{
			// A UDP socket needs no listen to serve: bound to the wildcard
			// and port 0 (a resolver's), it is bound to eth0 instead; to
			// another interface's address, it is refused whatever the port.
			{"udp-wildcard-port-zero", "udp-bound-to", []string{"0.0.0.0:0", n.ctrV4}, "ok"},
			{"udp-wildcard6-port-zero", "udp-bound-to", []string{"[::]:0", n.ctrV6}, "ok"},
			{"udp-eth0-port-zero", "udp-bind", []string{v4 + ":0"}, "ok"},
			{"udp-loopback-port-zero", "udp-bind", []string{"127.0.0.1:0"}, "EPERM"},
			{"device-long-option", "bindtodevice-long", []string{"lo"}, "EPERM"},
			{"raw-socket", "socket", []string{"raw4"}, "EPERM"},
			{"sctp-socket", "socket", []string{"sctp4"}, sctpWant},
			{"packet-socket", "socket", []string{"packet"}, packetWant},
			{"ia32-device-lo", "ia32-bindtodevice", []string{"lo"}, ia32Want},
			{"eth0-v4", "tcp-bind", []string{v4 + ":8080"}, "ok"},
			{"eth0-range", "tcp-bind", []string{v4 + ":9001"}, "ok"},
			{"eth0-v6", "tcp-bind", []string{v6 + ":8080"}, "ok"},
			{"eth0-v4-mapped", "tcp-bind", []string{"[::ffff:" + n.ctrV4 + "]:8080"}, "ok"},
			{"eth0-udp", "udp-bind", []string{v4 + ":8080"}, "ok"},
			{"eth0-listen", "tcp-listen", []string{v4 + ":8080"}, "ok"},
			{"port-zero", "tcp-bind", []string{"0.0.0.0:0"}, "ok"}, // a client's bind: the listen is judged
			{"listen-port-zero", "tcp-listen", []string{v4 + ":0"}, listenWant},
			{"wildcard-v4", "tcp-bind", []string{"0.0.0.0:8080"}, "EPERM"},
			{"wildcard-v6", "tcp-bind", []string{"[::]:8080"}, "EPERM"},
			{"wildcard-v4-mapped", "tcp-bind", []string{"[::ffff:0.0.0.0]:8080"}, "EPERM"},
			{"loopback-v4", "tcp-bind", []string{"127.0.0.1:8080"}, "EPERM"},
			{"loopback-v6", "tcp-bind", []string{"[::1]:8080"}, "EPERM"},
			{"other-port", "tcp-bind", []string{v4 + ":9090"}, "EPERM"},
			{"udp-wildcard", "udp-bind", []string{"0.0.0.0:5353"}, "EPERM"},
			{"udp-other-port", "udp-bind", []string{v4 + ":5353"}, "EPERM"},
			{"device-lo", "bindtodevice", []string{"4", "lo"}, "EPERM"},
			{"device-eth0", "bindtodevice", []string{"4", "eth0"}, "ok"},
			{"ifindex-lo", "bindtoifindex", []string{"lo"}, "EPERM"},
			{"ifindex-eth0", "bindtoifindex", []string{"eth0"}, "ok"},
			{"client-tcp", "tcp-connect", []string{n.hostTCP}, "ok"},
			{"client-udp-dns", "udp-query", []string{n.hostUDP}, "ok"},
		}
		var ops [][]string
		for _, r := range routes {
			ops = append(ops, append([]string{r.name, r.op}, r.args...))
		}
		id := h.rt.NewID(t, "bind")
		res := h.runBatch(t, id, batchArgs(ops...), n.withNS...)
		for _, r := range routes {
			if res[r.name] != r.want {
				t.Errorf("%s (%s %v): %s, want %s", r.name, r.op, r.args, res[r.name], r.want)
			}
		}
		// Each refusal is a violation naming the policy, the container and the address.
		for _, r := range routes {
			if r.want != "EPERM" {
				continue
			}
			h.rec.waitFor(t, "violation of "+r.name, func(e *event.Event) bool {
				if e.Kind != event.KindViolation || e.Container == nil || e.Container.ID != id || e.Verdict != event.VerdictDeny ||
					e.Policy != "bind-web" || e.Rule != "bindInterfaces" || e.Mode != "enforce" || e.Reason == "" {
					return false
				}
				switch r.op {
				case "bindtodevice-long", "ia32-bindtodevice":
					return e.Op == "bind_device" && e.Device == "unread"
				case "socket":
					return e.Op == "socket"
				case "bindtodevice":
					return e.Op == "bind_device" && e.Device == r.args[1]
				case "bindtoifindex":
					return e.Op == "bind_device" && strings.HasPrefix(e.Device, "ifindex:")
				case "tcp-listen":
					return e.Op == "listen"
				}
				ap := netip.MustParseAddrPort(r.args[0])
				return e.Op == "bind" && e.Port == ap.Port() && e.Addr == ap.Addr().Unmap().String()
			})
		}
	})

	t.Run("implicit-bind", func(t *testing.T) {
		// A listen on a socket nobody bound: the kernel binds it to the
		// wildcard address. With BPF LSM the listen is refused; without,
		// no connection reaches it.
		id := h.rt.NewID(t, "bind")
		c := h.helperRunner(1, n.withNS...).RunDetached(t, id, "/rf-helper", "-test.run=^$", "listen=tcp-listen-unbound:4,20s")
		if full {
			out := waitOutput(t, c, "RESULT listen")
			if !strings.Contains(out, "RESULT listen EPERM") {
				t.Fatalf("listen on an unbound socket: %q, want EPERM", out)
			}
			return
		}
		out := waitOutput(t, c, "PORT ")
		port := strings.Fields(out[strings.Index(out, "PORT "):])[1]
		conn, err := net.DialTimeout("tcp4", net.JoinHostPort(n.ctrV4, port), 2*time.Second)
		if err == nil {
			conn.Close()
			t.Fatalf("connected to the implicitly bound listener on port %s", port)
		}
		p, _ := strconv.Atoi(port)
		h.rec.waitFor(t, "dropped connection", func(e *event.Event) bool {
			return e.Kind == event.KindViolation && e.Container != nil && e.Container.ID == id && e.Op == "connection" &&
				e.Verdict == event.VerdictDeny && int(e.Port) == p && e.Addr == n.ctrV4
		})
	})

	t.Run("allowed-listener-accepts", func(t *testing.T) {
		id := h.rt.NewID(t, "bind")
		c := h.helperRunner(1, n.withNS...).RunDetached(t, id, "/rf-helper", "-test.run=^$", "serve=tcp-serve:"+n.ctrV4+":8080,20s")
		waitOutput(t, c, "LISTENING")
		conn, err := net.DialTimeout("tcp4", n.ctrV4+":8080", 5*time.Second)
		if err != nil {
			t.Fatalf("connecting to the allowed listener: %v", err)
		}
		conn.Close()
		if out := waitOutput(t, c, "RESULT serve"); !strings.Contains(out, "RESULT serve ok") {
			t.Fatalf("allowed listener: %q", out)
		}
	})

	t.Run("audit", func(t *testing.T) {
		id := h.rt.NewID(t, "audit")
		res := h.runBatch(t, id, batchArgs([]string{"wildcard", "tcp-bind", "0.0.0.0:8080"}), n.withNS...)
		if res["wildcard"] != "ok" {
			t.Fatalf("audit mode refused a bind: %s", res["wildcard"])
		}
		h.rec.waitFor(t, "audit violation", func(e *event.Event) bool {
			return e.Kind == event.KindViolation && e.Container != nil && e.Container.ID == id && e.Verdict == event.VerdictAudit &&
				e.Policy == "bind-audit" && e.Mode == "audit" && e.Addr == "0.0.0.0" && e.Port == 8080
		})
	})

	t.Run("flood", func(t *testing.T) {
		// Identical refusals: every one is refused, few are reported, and
		// the reports count the rest.
		const n200 = 200
		var ops [][]string
		for i := 0; i < n200; i++ {
			ops = append(ops, []string{fmt.Sprint("f", i), "tcp-bind", n.ctrV4 + ":9999"})
		}
		id := h.rt.NewID(t, "bind")
		res := h.runBatch(t, id, batchArgs(ops...), n.withNS...)
		for i := 0; i < n200; i++ {
			if r := res[fmt.Sprint("f", i)]; r != "EPERM" {
				t.Fatalf("bind %d of the flood: %s, want EPERM", i, r)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			var reports, total uint64
			for _, e := range h.violationsOf(id) {
				if e.Port == 9999 || e.Message != "" {
					reports++
					total += e.ViolationCount()
				}
			}
			if total == n200 {
				if reports > 40 {
					t.Fatalf("%d reports for %d identical violations: not rate-limited", reports, n200)
				}
				t.Logf("%d identical violations: %d reports", n200, reports)
				break
			}
			if total > n200 || time.Now().After(deadline) {
				t.Fatalf("reports count %d violations, want %d:%s", total, n200, describe(h.violationsOf(id)))
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("address-changes", func(t *testing.T) {
		// An address added to eth0 becomes allowed within a second, and
		// stops being allowed within a second of its removal.
		id := h.rt.NewID(t, "bind")
		h.helperRunner(1, n.withNS...).RunDetached(t, id, "/rf-helper", "-test.run=^$", "wait=sleep:60s")
		cg := h.waitContainerCgroup(t, id)
		extra := netip.MustParseAddr("10.213.0.3")
		start := time.Now()
		n.ns.AddAddr(t, "eth0", extra.String()+"/24")
		h.waitBindAddr(t, cg, extra, true, start)
		start = time.Now()
		n.ns.DelAddr(t, "eth0", extra.String()+"/24")
		h.waitBindAddr(t, cg, extra, false, start)
	})
}

// waitContainerCgroup waits until the sensor knows container id and
// returns its cgroup.
func (h *containerHarness) waitContainerCgroup(t *testing.T, id string) uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range h.s.Containers() {
			if c.ID == id && c.CgroupID != 0 {
				return c.CgroupID
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("container %s never known", id)
	return 0
}

// waitBindAddr waits until the kernel allows (or no longer allows) a for
// the container of cgroup cg, and fails if that took a second or more.
func (h *containerHarness) waitBindAddr(t *testing.T, cg uint64, a netip.Addr, present bool, since time.Time) {
	t.Helper()
	for {
		addrs, err := h.s.kern.BindAddrs(cg)
		if err != nil {
			t.Fatal(err)
		}
		has := false
		for _, x := range addrs {
			has = has || x == a
		}
		took := time.Since(since)
		if has == present {
			t.Logf("address %s present=%v in the kernel map after %v", a, present, took)
			if took >= time.Second {
				t.Fatalf("took %v, want under a second", took)
			}
			return
		}
		if took > 5*time.Second {
			t.Fatalf("address %s present=%v never reached the kernel map (have %v)", a, present, addrs)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
