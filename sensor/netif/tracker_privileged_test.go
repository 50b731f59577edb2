package netif

import (
	"errors"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	testnetns "github.com/ringfence/ringfence/test/netns"

	"github.com/ringfence/ringfence/test/testenv"
)

func TestPrivilegedTrackInitialState(t *testing.T) {
	testenv.Privileged(t)
	n := testnetns.New(t)
	n.AddVeth(t, "eth0")
	n.AddAddr(t, "eth0", "10.77.1.1/24")
	tr, rec := newTracker(t)

	key, err := tr.Track("c1", n.Path, []string{"eth0", "lo", "missing0"})
	if err != nil {
		t.Fatal(err)
	}
	if want, err := KeyOf(n.Path); err != nil || key != want {
		t.Fatalf("key %d, KeyOf %d (%v)", key, want, err)
	}
	s, ok := rec.last(key)
	if !ok {
		t.Fatal("Track returned before onChange was called")
	}
	if got, _ := tr.Snapshot(key); !got.Equal(s) {
		t.Fatalf("Snapshot %+v, delivered %+v", got, s)
	}
	eth0, _ := s.Interface("eth0")
	if eth0.Index != n.Link(t, "eth0").Attrs().Index || !slices.Contains(eth0.Addrs, netip.MustParseAddr("10.77.1.1")) {
		t.Fatalf("eth0: %+v", eth0)
	}
	// A fresh namespace's lo is down and has no address yet.
	if lo, _ := s.Interface("lo"); lo.Index != 1 || len(lo.Addrs) != 0 {
		t.Fatalf("lo: %+v", lo)
	}
	if m, ok := s.Interface("missing0"); !ok || m.Index != 0 || m.Addrs != nil {
		t.Fatalf("missing0: %+v, %v", m, ok)
	}
}

func TestPrivilegedAddressChanges(t *testing.T) {
	testenv.Privileged(t)
	n := testnetns.New(t)
	n.AddVeth(t, "eth0")
	tr, rec := newTracker(t)
	key, err := tr.Track("c1", n.Path, []string{"eth0", "lo"})
	if err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name string
		do   func()
		cond func(Snapshot) bool
	}{
		{"add IPv4", func() { n.AddAddr(t, "eth0", "10.77.2.1/24") }, hasAddr("eth0", "10.77.2.1")},
		{"add IPv6", func() { n.AddAddr(t, "eth0", "fd00:77::1/64") }, hasAddr("eth0", "fd00:77::1")},
		{"delete IPv4", func() { n.DelAddr(t, "eth0", "10.77.2.1/24") }, lacksAddr("eth0", "10.77.2.1")},
		{"lo up gives loopback addresses", func() { n.SetUp(t, "lo") }, func(s Snapshot) bool {
			return hasAddr("lo", "127.0.0.1")(s) && hasAddr("lo", "::1")(s)
		}},
	}
	for _, st := range steps {
		start := time.Now()
		st.do()
		lat := rec.waitFor(t, key, start, changeWithin, st.name, st.cond)
		t.Logf("%s: reported %v after the change", st.name, lat)
	}
	if !hasAddr("eth0", "fd00:77::1")(tr.mustSnapshot(t, key)) {
		t.Fatal("IPv6 address lost when the IPv4 one was deleted")
	}
}

func TestPrivilegedLinkRenameDeleteAndCreate(t *testing.T) {
	testenv.Privileged(t)
	n := testnetns.New(t)
	tr, rec := newTracker(t)
	// Tracked before the interface exists, as when a CNI plugin has not
	// run yet.
	key, err := tr.Track("c1", n.Path, []string{"eth0"})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := rec.last(key); !absent("eth0")(s) {
		t.Fatalf("before the link exists: %+v", s)
	}

	start := time.Now()
	n.AddVeth(t, "eth0")
	n.AddAddr(t, "eth0", "10.77.3.1/24")
	lat := rec.waitFor(t, key, start, changeWithin, "link moved in and named eth0", hasAddr("eth0", "10.77.3.1"))
	t.Logf("moved in, renamed, addressed: reported %v after", lat)

	// A link is renamed while down; its IPv4 addresses stay.
	eth0 := n.Link(t, "eth0")
	if err := n.H.LinkSetDown(eth0); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := n.H.LinkSetName(eth0, "eth1"); err != nil {
		t.Fatal(err)
	}
	lat = rec.waitFor(t, key, start, changeWithin, "eth0 renamed away", absent("eth0"))
	t.Logf("renamed away: reported %v after", lat)

	start = time.Now()
	if err := n.H.LinkSetName(eth0, "eth0"); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, key, start, changeWithin, "renamed back", hasAddr("eth0", "10.77.3.1"))
	n.SetUp(t, "eth0")

	start = time.Now()
	if err := n.H.LinkDel(eth0); err != nil {
		t.Fatal(err)
	}
	lat = rec.waitFor(t, key, start, changeWithin, "eth0 deleted", absent("eth0"))
	t.Logf("deleted: reported %v after", lat)
}

// TestPrivilegedAltName tracks a name the kernel resolves as an alternative name, as
// it does for SO_BINDTODEVICE.
func TestPrivilegedAltName(t *testing.T) {
	testenv.Privileged(t)
	n := testnetns.New(t)
	eth0, _ := n.AddVeth(t, "eth0")
	n.AddAddr(t, "eth0", "10.77.6.1/24")
	tr, rec := newTracker(t)
	const alt = "uplink-alternative-name"
	key, err := tr.Track("c1", n.Path, []string{alt})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := rec.last(key); !absent(alt)(s) {
		t.Fatalf("before the altname exists: %+v", s)
	}
	start := time.Now()
	if err := n.H.LinkAddAltName(eth0, alt); err != nil {
		t.Fatal(err)
	}
	lat := rec.waitFor(t, key, start, changeWithin, "altname added", hasAddr(alt, "10.77.6.1"))
	t.Logf("altname added: reported %v after", lat)
	if f, _ := tr.mustSnapshot(t, key).Interface(alt); f.Index != eth0.Attrs().Index {
		t.Fatalf("%s: %+v, want index %d", alt, f, eth0.Attrs().Index)
	}
	start = time.Now()
	if err := n.H.LinkDelAltName(eth0, alt); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, key, start, changeWithin, "altname removed", absent(alt))
}

func TestPrivilegedHostLoopback(t *testing.T) {
	testenv.Privileged(t)
	tr, _ := newTracker(t)
	key, err := tr.Track("host", "", []string{"lo"})
	if err != nil {
		t.Fatal(err)
	}
	if self, err := KeyOf("/proc/self/ns/net"); err != nil || self != key {
		t.Fatalf("key %d, /proc/self/ns/net %d (%v)", key, self, err)
	}
	lo, _ := tr.mustSnapshot(t, key).Interface("lo")
	if lo.Index != 1 {
		t.Fatalf("lo: %+v", lo)
	}
	for _, a := range []string{"127.0.0.1", "::1"} {
		if !slices.Contains(lo.Addrs, netip.MustParseAddr(a)) {
			t.Errorf("lo lacks %s: %+v", a, lo.Addrs)
		}
	}
}

func TestPrivilegedSharedNamespace(t *testing.T) {
	testenv.Privileged(t)
	n1, n2 := testnetns.New(t), testnetns.New(t)
	n1.AddVeth(t, "eth0")
	n1.AddAddr(t, "eth0", "10.77.4.1/24")
	tr, rec := newTracker(t)

	k1, err := tr.Track("a", n1.Path, []string{"eth0"})
	if err != nil {
		t.Fatal(err)
	}
	kb, err := tr.Track("b", n1.Path, []string{"lo", "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	k2, err := tr.Track("c", n2.Path, []string{"eth0"})
	if err != nil {
		t.Fatal(err)
	}
	if kb != k1 || k2 == k1 {
		t.Fatalf("keys: a %d, b %d, c %d", k1, kb, k2)
	}
	if w := tr.watchCount(); w != 2 {
		t.Fatalf("%d watches for 2 namespaces", w)
	}
	if names := interfaceNames(tr.mustSnapshot(t, k1)); !slices.Equal(names, []string{"eth0", "lo"}) {
		t.Fatalf("shared namespace tracks %v, want the union of its holders' names", names)
	}

	// A holder leaving shrinks the union; the watch stays.
	tr.Untrack("b")
	if names := interfaceNames(tr.mustSnapshot(t, k1)); !slices.Equal(names, []string{"eth0"}) {
		t.Fatalf("after b left: %v", names)
	}
	if s, _ := rec.last(k1); !s.Equal(tr.mustSnapshot(t, k1)) {
		t.Fatalf("the shrunken snapshot was not delivered: %+v", s)
	}
	start := time.Now()
	n1.AddAddr(t, "eth0", "10.77.4.2/24")
	rec.waitFor(t, k1, start, changeWithin, "change after a holder left", hasAddr("eth0", "10.77.4.2"))

	// Moving a holder to another namespace releases the first.
	if _, err := tr.Track("a", n2.Path, []string{"eth0"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.Snapshot(k1); ok {
		t.Fatal("namespace still watched after its last holder moved away")
	}
	calls := rec.callCount()
	n1.AddAddr(t, "eth0", "10.77.4.3/24")
	tr.Untrack("a")
	if tr.watchCount() != 1 {
		t.Fatalf("%d watches, want 1 (c's)", tr.watchCount())
	}
	tr.Untrack("c")
	tr.Untrack("c")
	if tr.watchCount() != 0 {
		t.Fatalf("%d watches after every holder left", tr.watchCount())
	}
	// No wait is needed: a released watch was stopped and waited for, and
	// the address was added once nobody watched its namespace.
	if got := rec.callCount(); got != calls {
		t.Fatalf("onChange called %d times for unwatched namespaces", got-calls)
	}
}

// TestPrivilegedResubscribeAfterOverflow overflows the subscriptions' socket buffers
// while onChange blocks, so the kernel drops notifications (ENOBUFS): the
// watch must subscribe and list again, and end with every address.
func TestPrivilegedResubscribeAfterOverflow(t *testing.T) {
	testenv.Privileged(t)
	n := testnetns.New(t)
	n.AddVeth(t, "eth0")
	rec := newRecorder()
	logs := &logBuffer{}
	tr := New(rec.onChange, slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(tr.Close)
	key, err := tr.Track("c1", n.Path, []string{"eth0"})
	if err != nil {
		t.Fatal(err)
	}

	const count = 2000
	gate := make(chan struct{})
	rec.mu.Lock()
	rec.gate = gate
	rec.mu.Unlock()
	for i := range count {
		n.AddAddr(t, "eth0", v4(i+1))
	}
	rec.mu.Lock()
	rec.gate = nil
	rec.mu.Unlock()
	start := time.Now()
	close(gate)

	lat := rec.waitFor(t, key, start, 5*time.Second, "every address after the overflow", func(s Snapshot) bool {
		f, _ := s.Interface("eth0")
		return hasAddr("eth0", "10.77.0.1")(s) && len(f.Addrs) >= count
	})
	t.Logf("all %d addresses reported %v after onChange was unblocked", count, lat)
	// The listing that reports them may come before the reader, which first
	// hands over what it had queued, meets ENOBUFS.
	for deadline := time.Now().Add(2 * time.Second); !strings.Contains(logs.String(), "subscribing again"); {
		if time.Now().After(deadline) {
			t.Fatalf("no overflow: the subscription never ended, so recovery was not exercised; log:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("log:\n%s", logs)
	start = time.Now()
	n.DelAddr(t, "eth0", v4(1))
	rec.waitFor(t, key, start, changeWithin, "change after resubscribing", lacksAddr("eth0", "10.77.0.1"))
}

func TestPrivilegedCloseReleasesEverything(t *testing.T) {
	testenv.Privileged(t)
	n1, n2 := testnetns.New(t), testnetns.New(t)
	n1.AddVeth(t, "eth0")
	fds, goroutines := testenv.CountFDs(), runtime.NumGoroutine()

	rec := newRecorder()
	tr := New(rec.onChange, nil)
	for i, path := range []string{n1.Path, n2.Path, ""} {
		if _, err := tr.Track(string(rune('a'+i)), path, []string{"eth0", "lo"}); err != nil {
			t.Fatal(err)
		}
	}
	key, _ := KeyOf(n1.Path)
	start := time.Now()
	n1.AddAddr(t, "eth0", "10.77.5.1/24")
	rec.waitFor(t, key, start, changeWithin, "address", hasAddr("eth0", "10.77.5.1"))
	if runtime.NumGoroutine() <= goroutines || testenv.CountFDs() <= fds {
		t.Fatal("tracking started no goroutine or opened no descriptor")
	}

	tr.Close()
	if got := testenv.CountFDs(); got != fds {
		t.Errorf("%d descriptors open after Close, %d before New", got, fds)
	}
	waitGoroutines(t, goroutines)
	if _, err := tr.Track("d", "", []string{"lo"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Track after Close: %v", err)
	}
	if testenv.CountFDs() != fds {
		t.Fatal("Track after Close leaked a descriptor")
	}
	tr.Close()
}
