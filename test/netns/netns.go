// Package netns gives tests named network namespaces and veth pairs made
// with netlink, removed when the test ends.
package netns

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func suffix(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// NS is a named network namespace created for a test, with a netlink
// handle in it to change it.
type NS struct {
	// Path is the namespace file, /run/netns/NAME (where the netns package mounts it).
	Path string
	// H is a netlink handle inside it.
	H *netlink.Handle
}

// New creates a named network namespace, removed when the test ends.
func New(tb testing.TB) *NS {
	tb.Helper()
	name := "rf-netif-" + suffix(tb)
	errc := make(chan error, 1)
	go func() {
		// NewNamed moves the calling thread into the new namespace, so it
		// is moved back before being unlocked. Were it left locked, the
		// thread would not end with the goroutine if it were the main one:
		// the runtime keeps that thread, and /proc/self/ns/net names the
		// main thread's namespace.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := netns.NewNamed(name)
		if err != nil {
			errc <- err
			return
		}
		ns.Close()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("return to the original netns: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		tb.Fatalf("create netns %s: %v", name, err)
	}
	tb.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			tb.Errorf("delete netns %s: %v", name, err)
		}
	})
	path := filepath.Join("/run/netns", name)
	ns, err := netns.GetFromPath(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		tb.Fatalf("netlink handle in %s: %v", name, err)
	}
	tb.Cleanup(h.Close)
	return &NS{Path: path, H: h}
}

// AddVeth creates a veth pair, moves its peer into n, names it ifname there
// and sets both ends up; it returns the peer as seen in n and the name of
// the end left in the calling namespace. The pair is
// deleted when the test ends.
func (n *NS) AddVeth(tb testing.TB, ifname string) (peer netlink.Link, host string) {
	tb.Helper()
	sfx := suffix(tb)
	host, peerName := "rfh"+sfx, "rfp"+sfx
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host}, PeerName: peerName}
	if err := netlink.LinkAdd(veth); err != nil {
		tb.Fatalf("add veth %s: %v", host, err)
	}
	tb.Cleanup(func() {
		if l, err := netlink.LinkByName(host); err == nil {
			netlink.LinkDel(l)
		}
	})
	p, err := netlink.LinkByName(peerName)
	if err != nil {
		tb.Fatal(err)
	}
	ns, err := netns.GetFromPath(n.Path)
	if err != nil {
		tb.Fatal(err)
	}
	defer ns.Close()
	if err := netlink.LinkSetNsFd(p, int(ns)); err != nil {
		tb.Fatalf("move %s into %s: %v", peerName, n.Path, err)
	}
	if p, err = n.H.LinkByName(peerName); err != nil {
		tb.Fatal(err)
	}
	if err := n.H.LinkSetName(p, ifname); err != nil {
		tb.Fatalf("rename %s to %s: %v", peerName, ifname, err)
	}
	n.SetUp(tb, ifname)
	if err := netlink.LinkSetUp(veth); err != nil {
		tb.Fatal(err)
	}
	return n.Link(tb, ifname), host
}

func (n *NS) Link(tb testing.TB, ifname string) netlink.Link {
	tb.Helper()
	l, err := n.H.LinkByName(ifname)
	if err != nil {
		tb.Fatalf("link %s: %v", ifname, err)
	}
	return l
}

func (n *NS) SetUp(tb testing.TB, ifname string) {
	tb.Helper()
	if err := n.H.LinkSetUp(n.Link(tb, ifname)); err != nil {
		tb.Fatalf("set %s up: %v", ifname, err)
	}
}

// AddAddr adds prefix (such as "10.1.2.3/24") to ifname, without duplicate
// address detection so an IPv6 address is usable at once.
func (n *NS) AddAddr(tb testing.TB, ifname, prefix string) {
	tb.Helper()
	a, err := netlink.ParseAddr(prefix)
	if err != nil {
		tb.Fatal(err)
	}
	a.Flags = unix.IFA_F_NODAD
	if err := n.H.AddrAdd(n.Link(tb, ifname), a); err != nil {
		tb.Fatalf("add %s to %s: %v", prefix, ifname, err)
	}
}

func (n *NS) DelAddr(tb testing.TB, ifname, prefix string) {
	tb.Helper()
	a, err := netlink.ParseAddr(prefix)
	if err != nil {
		tb.Fatal(err)
	}
	if err := n.H.AddrDel(n.Link(tb, ifname), a); err != nil {
		tb.Fatalf("delete %s from %s: %v", prefix, ifname, err)
	}
}
