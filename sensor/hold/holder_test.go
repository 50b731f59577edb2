package hold

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/hostfs"
	"github.com/ringfence/ringfence/sensor/hostfs/fake"
)

// fakeKernel records what the holder asks of the kernel.
type fakeKernel struct {
	mu         sync.Mutex
	watched    []uint64
	released   []uint64
	pending    []uint64
	releaseErr error
}

func (k *fakeKernel) Watch(cg uint64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.watched = append(k.watched, cg)
	return nil
}

func (k *fakeKernel) Release(cg uint64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.releaseErr != nil {
		return k.releaseErr
	}
	k.released = append(k.released, cg)
	k.pending = slices.DeleteFunc(k.pending, func(id uint64) bool { return id == cg })
	return nil
}

func (k *fakeKernel) Pending() ([]uint64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.pending), nil
}

func (k *fakeKernel) releases() []uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.released)
}

// rig is a holder with a fake kernel, fake signals and recorded output.
type rig struct {
	h       *Holder
	kern    *fakeKernel
	cache   *container.Cache
	applied chan container.Info
	member  enforce.Member
	applyFn func(container.Info) error

	mu        sync.Mutex
	signals   []string
	delivered []event.Event
	got       chan event.Event
	connected bool
}

func newRig(t *testing.T, timeout time.Duration, cgroup2, proc string, parents ...string) *rig {
	t.Helper()
	r := &rig{kern: &fakeKernel{}, cache: container.NewCache(container.CacheConfig{}), applied: make(chan container.Info, 16),
		got: make(chan event.Event, 2*maxParked), connected: true}
	r.h = New(Config{
		Kernel: r.kern, Cache: r.cache, Timeout: timeout, Cgroup2: cgroup2, ProcRoot: proc, Parents: parents,
		Deliver:   func(e event.Event) { r.mu.Lock(); r.delivered = append(r.delivered, e); r.mu.Unlock(); r.got <- e },
		Connected: func() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.connected },
		Apply: func(info container.Info, pid uint32) (enforce.Member, error) {
			r.applied <- info
			if r.applyFn != nil {
				return r.member, r.applyFn(info)
			}
			return r.member, nil
		},
		Judge: func(m enforce.Member, e *event.Event) *event.Event {
			if m.ExecAction == enforce.ActionNone {
				return nil
			}
			return &event.Event{Kind: event.KindViolation, PID: e.PID}
		},
		Signal: func(pid uint32, sig unix.Signal) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.signals = append(r.signals, unix.SignalName(sig))
			return nil
		},
	})
	t.Cleanup(func() { r.h.Stop(true) })
	return r
}

func (r *rig) next(t *testing.T) event.Event {
	t.Helper()
	select {
	case e := <-r.got:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("nothing delivered in 5 s")
		return event.Event{}
	}
}

func (r *rig) sigs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.signals)
}

func heldExec(cg uint64, pid uint32) event.Event {
	return event.Event{Kind: event.KindExec, CgroupID: cg, PID: pid, Binary: "/app", Held: true}
}

// TestKnownEndsTheWait holds a first exec and a pending event, then names
// the container: with an hour of timeout, only being told can end the wait.
func TestKnownEndsTheWait(t *testing.T) {
	r := newRig(t, time.Hour, "", "")
	if !r.h.Take(event.Event{Kind: event.KindFile, CgroupID: 10, PID: 4, Pending: true}) || !r.h.Take(heldExec(10, 5)) {
		t.Fatal("events of an unknown container not taken")
	}
	info := container.Info{ID: "c10", CgroupID: 10, Pid: 5}
	r.cache.Put(info)
	r.h.Known(info)
	if got := <-r.applied; got.ID != "c10" {
		t.Fatalf("applied %+v", got)
	}
	first, second := r.next(t), r.next(t)
	if first.Kind != event.KindFile || second.HoldOutcome != "released" || second.Held {
		t.Fatalf("delivered %+v then %+v", first, second)
	}
	if got := r.kern.releases(); !slices.Equal(got, []uint64{10}) {
		t.Fatalf("released %v", got)
	}
	if got := r.sigs(); !slices.Equal(got, []string{"SIGCONT"}) {
		t.Fatalf("signals %v", got)
	}
	if c := r.h.Counts(); c["classified"] != 1 || c["held_execs"] != 1 || c["timeout"] != 0 {
		t.Fatalf("counts %v", c)
	}
	if r.h.Take(event.Event{Kind: event.KindFile, CgroupID: 10, Pending: true}) {
		t.Fatal("an event of a known container was parked")
	}
}

// TestKnownBeforeTheExec names a container before its first exec: it is
// watched and put under its policies at once, and its exec is let go as
// soon as it is held.
func TestKnownBeforeTheExec(t *testing.T) {
	r := newRig(t, time.Hour, "", "")
	info := container.Info{ID: "c11", CgroupID: 11}
	r.cache.Put(info)
	r.h.Known(info)
	<-r.applied
	if !slices.Equal(r.kern.watched, []uint64{11}) {
		t.Fatalf("watched %v", r.kern.watched)
	}
	r.h.Take(heldExec(11, 6))
	if e := r.next(t); e.HoldOutcome != "released" {
		t.Fatalf("held exec %+v", e)
	}
}

// TestTimeoutAndRuntimeDown: a container nobody names in time is named
// from its cgroup path when that says whose it is; else it stays held (fail
// closed), reported, until the runtime names it, or forgotten with its
// cgroup. A runtime that goes away ends the waits at once, the same way.
func TestTimeoutAndRuntimeDown(t *testing.T) {
	proc := fake.Dir(t, map[string]string{
		// A cgroup path with a container id: named from it.
		"7/cgroup": "0::/default/" + "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789" + "\n",
	})
	cg2 := fake.Dir(t, map[string]string{"default/abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789/cgroup.procs": ""})
	r := newRig(t, 50*time.Millisecond, cg2, proc)
	r.kern.setPending(12)
	r.h.Take(heldExec(12, 8)) // no /proc entry: nothing to name it
	unnamedHeld(t, r, 12)
	r.h.Poll(false)
	if slices.Contains(r.kern.releases(), 12) || r.sent("SIGCONT") {
		t.Fatal("an unnamed container was let go at a poll")
	}
	r.cache.Put(container.Info{ID: "c12", CgroupID: 12})
	r.h.Poll(false)
	if e := r.next(t); e.HoldOutcome != "timeout" || e.PID != 8 {
		t.Fatalf("exec of a container named late: %+v", e)
	}
	if !slices.Contains(r.kern.releases(), 12) || !r.sent("SIGCONT") {
		t.Fatal("a container named late was not let go")
	}

	id, err := hostfs.CgroupID(cg2, "default/abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789")
	if err != nil {
		t.Fatal(err)
	}
	r.h.Take(heldExec(id, 7))
	if e := r.next(t); e.HoldOutcome != "cgroup-path" {
		t.Fatalf("exec of a container named from its path: %+v", e)
	}
	if info, ok := r.cache.Lookup(id); !ok || info.ID != "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789" {
		t.Fatalf("container named from its path not cached: %+v", info)
	}

	// The runtime goes away during a wait of an hour: the wait ends now,
	// the container held.
	slow := newRig(t, time.Hour, "", "")
	slow.kern.setPending(13, 14)
	slow.h.Take(heldExec(13, 9))
	slow.h.RuntimeDown()
	unnamedHeld(t, slow, 13)
	// While it is down, nobody is waited for.
	slow.mu.Lock()
	slow.connected = false
	slow.mu.Unlock()
	slow.h.Take(heldExec(14, 10))
	unnamedHeld(t, slow, 14)
	if c := slow.h.Counts(); c["timeout"] != 2 {
		t.Fatalf("counts %v", c)
	}
	// A held cgroup removed before anyone named it is forgotten.
	slow.kern.setPending(13)
	slow.h.Poll(false)
	if _, held := slow.h.Unapplied()[14]; held {
		t.Fatal("a removed cgroup is still listed as held")
	}
	if _, held := slow.h.Unapplied()[13]; !held || slow.sent("SIGCONT") {
		t.Fatal("the other unnamed container was let go")
	}
}

// unnamedHeld checks that the held exec of cgroup id was reported as a
// container nobody named, and not let go.
func unnamedHeld(t *testing.T, r *rig, id uint64) {
	t.Helper()
	v := r.next(t)
	if v.Kind != event.KindViolation || v.Rule != RuleApply || v.CgroupID != id || v.Container != nil || !strings.Contains(v.Reason, "nobody named the container") {
		t.Fatalf("unnamed container %d: %+v", id, v)
	}
	if _, held := r.h.Unapplied()[id]; !held {
		t.Fatalf("unnamed container %d not listed as held", id)
	}
	if slices.Contains(r.kern.releases(), id) {
		t.Fatalf("unnamed container %d released", id)
	}
}

// sent reports whether the holder sent a signal named sig.
func (r *rig) sent(sig string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.signals, sig)
}

func (k *fakeKernel) setPending(ids ...uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pending = ids
}

// TestDeniedExec: a container that may execute nothing has its first
// process killed before it runs, and the violation follows the exec.
func TestDeniedExec(t *testing.T) {
	r := newRig(t, time.Hour, "", "")
	r.member = enforce.Member{ExecPolicy: 1, ExecRule: enforce.RuleAllowedRegistries, ExecAction: enforce.ActionDeny}
	r.h.Take(heldExec(15, 11))
	info := container.Info{ID: "c15", CgroupID: 15}
	r.cache.Put(info)
	r.h.Known(info)
	if e := r.next(t); e.HoldOutcome != "killed" {
		t.Fatalf("exec %+v", e)
	}
	if v := r.next(t); v.Kind != event.KindViolation || v.PID != 11 {
		t.Fatalf("violation %+v", v)
	}
	if got := r.sigs(); !slices.Equal(got, []string{"SIGKILL", "SIGCONT"}) {
		t.Fatalf("signals %v, want SIGKILL before SIGCONT", got)
	}
}

// TestRuntimeSelfExec lets the runtime's re-exec of itself run at once
// (the container stays held for its entrypoint), recognised by what was
// executed: a memfd, or the host's runtime binary. A path or argv an image
// could choose is not enough.
func TestRuntimeSelfExec(t *testing.T) {
	hostRunc := event.FileID{Dev: 8<<20 | 1, Ino: 4242}
	for _, c := range []struct {
		name    string
		binary  string
		args    []string
		exe     event.FileID
		runtime bool
	}{
		{"sealed memfd copy", "/proc/self/fd/5", []string{"runc", "init"}, event.FileID{Dev: 7, Ino: 99, Memfd: true}, true},
		{"host binary", "/usr/bin/runc", []string{"runc", "init"}, hostRunc, true},
		{"the image's runc through /proc/self/fd/..", "/proc/self/fd/../../../bin/runc", []string{"runc", "init"}, event.FileID{Dev: 50, Ino: 4242}, false},
		{"an image file by /dev/fd", "/dev/fd/3", []string{"runc", "init"}, event.FileID{Dev: 8<<20 | 1, Ino: 7}, false},
		{"memfd, but not init", "/proc/self/fd/5", []string{"runc", "run"}, event.FileID{Memfd: true}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, time.Hour, "", "")
			r.h.cfg.RuntimeExes = []event.FileID{hostRunc}
			e := heldExec(16, 12)
			e.Binary, e.Args, e.Exe = c.binary, c.args, c.exe
			if !r.h.Take(e) {
				t.Fatal("a held exec of an unknown container not parked")
			}
			sent := r.sigs()
			if c.runtime != slices.Equal(sent, []string{"SIGCONT"}) {
				t.Fatalf("signals %v: let go as the runtime's %v, want %v", sent, !c.runtime, c.runtime)
			}
			if !r.h.waiting(16) {
				t.Fatal("the container is not waited for any more")
			}
			if want := map[bool]uint64{true: 1}[c.runtime]; r.h.Counts()["runtime_execs"] != want {
				t.Fatalf("counts %v", r.h.Counts())
			}
		})
	}
}

func TestParkedOverflow(t *testing.T) {
	r := newRig(t, time.Hour, "", "")
	r.h.Take(heldExec(17, 13))
	for range maxParked - 1 {
		if !r.h.Take(event.Event{Kind: event.KindFile, CgroupID: 17, Pending: true}) {
			t.Fatal("not parked below the bound")
		}
	}
	if r.h.Take(event.Event{Kind: event.KindFile, CgroupID: 17, Pending: true}) {
		t.Fatal("parked past the bound")
	}
	if !r.h.Take(heldExec(17, 14)) {
		t.Fatal("a held exec must always be parked")
	}
	if c := r.h.Counts(); c["parked_overflow"] != 1 {
		t.Fatalf("counts %v", c)
	}
}

// TestReleaseRefused: the kernel refuses to end a hold; it is counted and
// tried again at the next poll.
func TestReleaseRefused(t *testing.T) {
	r := newRig(t, time.Hour, "", "")
	r.kern.releaseErr = errors.New("map busy")
	r.h.Take(heldExec(18, 15))
	info := container.Info{ID: "c18", CgroupID: 18}
	r.cache.Put(info)
	r.h.Known(info)
	r.next(t)
	if c := r.h.Counts(); c["release_errors"] != 1 {
		t.Fatalf("counts %v", c)
	}
	r.kern.mu.Lock()
	r.kern.releaseErr = nil
	r.kern.mu.Unlock()
	r.h.Poll(false)
	if got := r.kern.releases(); !slices.Equal(got, []uint64{18}) {
		t.Fatalf("released %v after the poll", got)
	}
	r.h.Poll(false)
	if got := r.kern.releases(); len(got) != 1 {
		t.Fatalf("released again: %v", got)
	}
}

func TestApplyErrorCounted(t *testing.T) {
	r := newRig(t, time.Hour, "", "")
	r.applyFn = func(container.Info) error { return errors.New("bind_addrs full") }
	info := container.Info{ID: "c19", CgroupID: 19}
	r.cache.Put(info)
	r.h.Known(info)
	<-r.applied
	if c := r.h.Counts(); c["apply_errors"] != 1 {
		t.Fatalf("counts %v", c)
	}
}

// TestStopLetsEveryoneGo stops the holder during a wait: the held process
// runs on and what was parked is delivered.
func TestStopLetsEveryoneGo(t *testing.T) {
	r := newRig(t, time.Hour, "", "")
	r.h.Take(heldExec(20, 16))
	r.h.Stop(true)
	if e := r.next(t); e.Held || e.PID != 16 {
		t.Fatalf("after stop: %+v", e)
	}
	if r.h.Take(heldExec(20, 17)) {
		t.Fatal("taken after stop")
	}
}

// TestUnappliedStaysHeld: a container whose policies cannot be applied
// stays held (fail closed), says why, and is let go once a poll applies
// them.
func TestUnappliedStaysHeld(t *testing.T) {
	r := newRig(t, time.Hour, "", "")
	var mu sync.Mutex
	fail := true
	r.applyFn = func(container.Info) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errors.New("bind_addrs full")
		}
		return nil
	}
	r.h.Take(heldExec(21, 18))
	info := container.Info{ID: "c21", CgroupID: 21}
	r.cache.Put(info)
	r.h.Known(info)
	v := r.next(t)
	if v.Kind != event.KindViolation || v.Rule != RuleApply || v.Verdict != event.VerdictDeny || !strings.Contains(v.Reason, "bind_addrs full") {
		t.Fatalf("report %+v", v)
	}
	if len(r.kern.releases()) != 0 || len(r.sigs()) != 0 {
		t.Fatalf("released %v, signals %v: an unapplied container was let go", r.kern.releases(), r.sigs())
	}
	if u := r.h.Unapplied(); u[21] == "" || len(u) != 1 {
		t.Fatalf("unapplied %v", u)
	}
	r.h.Poll(false) // still failing: held, reported once
	if len(r.kern.releases()) != 0 {
		t.Fatal("let go while its policies still fail")
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	r.h.Poll(false)
	if e := r.next(t); e.Kind != event.KindExec || e.HoldOutcome != "released" {
		t.Fatalf("after the policies applied: %+v", e)
	}
	if got := r.kern.releases(); !slices.Equal(got, []uint64{21}) || !slices.Equal(r.sigs(), []string{"SIGCONT"}) {
		t.Fatalf("released %v, signals %v", got, r.sigs())
	}
	if len(r.h.Unapplied()) != 0 {
		t.Fatal("still listed as unapplied")
	}
}

// TestStopLeavesHeld: stopped for a next daemon (pinned state), the holder
// leaves a held process stopped and its hold in the kernel, and delivers
// the rest of what was parked.
func TestStopLeavesHeld(t *testing.T) {
	r := newRig(t, time.Hour, "", "")
	r.h.Take(heldExec(22, 19))
	r.h.Take(event.Event{Kind: event.KindFile, CgroupID: 22, PID: 20, Pending: true})
	r.h.Stop(false)
	if e := r.next(t); e.Kind != event.KindFile {
		t.Fatalf("delivered %+v, want the parked file event only", e)
	}
	select {
	case e := <-r.got:
		t.Fatalf("the held exec was delivered: %+v", e)
	default:
	}
	if len(r.sigs()) != 0 || len(r.kern.releases()) != 0 {
		t.Fatalf("signals %v, releases %v: the hold did not stay", r.sigs(), r.kern.releases())
	}
}
