package netif

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ringfence/ringfence/test/testenv"
)

// TestMain fails the package when the tests leaked a file descriptor (an
// unclosed netlink socket or namespace).
func TestMain(m *testing.M) { os.Exit(testenv.RunCheckingFDs(m)) }

// waitGoroutines waits up to 2 s for the number of goroutines to fall to want.
func waitGoroutines(tb testing.TB, want int) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			tb.Fatalf("%d goroutines, want %d:\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func randomSuffix(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// recorder keeps the last snapshot onChange delivered for each namespace.
type recorder struct {
	mu      sync.Mutex
	latest  map[NSKey]Snapshot
	at      map[NSKey]time.Time
	calls   int
	changed chan struct{}
	// gate, when set, is waited on by onChange before it records.
	gate chan struct{}
}

func newRecorder() *recorder {
	return &recorder{latest: map[NSKey]Snapshot{}, at: map[NSKey]time.Time{}, changed: make(chan struct{})}
}

func (r *recorder) onChange(s Snapshot) {
	r.mu.Lock()
	gate := r.gate
	r.mu.Unlock()
	if gate != nil {
		<-gate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latest[s.Key] = s
	r.at[s.Key] = time.Now()
	r.calls++
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) last(key NSKey) (Snapshot, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.latest[key]
	return s, ok
}

func (r *recorder) callCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// waitFor waits until the last snapshot of key satisfies cond, failing when
// that takes more than within from since; it returns how long after since
// onChange delivered it.
func (r *recorder) waitFor(tb testing.TB, key NSKey, since time.Time, within time.Duration, what string, cond func(Snapshot) bool) time.Duration {
	tb.Helper()
	timeout := time.NewTimer(time.Until(since.Add(within)))
	defer timeout.Stop()
	for {
		r.mu.Lock()
		s, ok := r.latest[key]
		at, ch := r.at[key], r.changed
		r.mu.Unlock()
		if ok && cond(s) {
			return at.Sub(since)
		}
		select {
		case <-ch:
		case <-timeout.C:
			tb.Fatalf("%s: not seen within %v; last snapshot: %+v", what, within, s)
		}
	}
}

// hasAddr is a condition: ifname exists and has addr.
func hasAddr(ifname, addr string) func(Snapshot) bool {
	want := netip.MustParseAddr(addr)
	return func(s Snapshot) bool {
		f, _ := s.Interface(ifname)
		return f.Index != 0 && slices.Contains(f.Addrs, want)
	}
}

// lacksAddr is a condition: ifname does not have addr.
func lacksAddr(ifname, addr string) func(Snapshot) bool {
	has := hasAddr(ifname, addr)
	return func(s Snapshot) bool { return !has(s) }
}

// absent is a condition: no interface is named ifname.
func absent(ifname string) func(Snapshot) bool {
	return func(s Snapshot) bool {
		f, ok := s.Interface(ifname)
		return ok && f.Index == 0 && len(f.Addrs) == 0
	}
}

// v4 returns the IPv4 address n of 10.77.0.0/16, as a /32 prefix.
func v4(n int) string { return fmt.Sprintf("%s/32", net.IPv4(10, 77, byte(n>>8), byte(n))) }
