package sensor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/hold"
	"github.com/ringfence/ringfence/sensor/hostfs"
	"github.com/ringfence/ringfence/sensor/kernel"
	"github.com/ringfence/ringfence/test/testenv"
)

// recorder is a sink that keeps every event for the test to search.
type recorder struct {
	mu     sync.Mutex
	events []event.Event
}

func (r *recorder) Write(e *event.Event, _ []byte) error {
	r.mu.Lock()
	r.events = append(r.events, *e)
	r.mu.Unlock()
	return nil
}

func (r *recorder) Flush() error { return nil }

// waitFor returns the first event matching match, waiting up to 10 s.
func (r *recorder) waitFor(tb testing.TB, what string, match func(*event.Event) bool) event.Event {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		for i := range r.events {
			if match(&r.events[i]) {
				e := r.events[i]
				r.mu.Unlock()
				return e
			}
		}
		n := len(r.events)
		r.mu.Unlock()
		if time.Now().After(deadline) {
			tb.Fatalf("no %s event among %d events: %s", what, n, r.dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// all returns a copy of the events so far.
func (r *recorder) all() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

func (r *recorder) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, e := range r.events {
		if e.Kind == event.KindFile || e.Kind == event.KindBind || e.Kind == event.KindExec || e.Kind == event.KindViolation {
			fmt.Fprintf(&b, "\n  %s pid=%d op=%s path=%q target=%q scope=%s addr=%s port=%d binary=%s verdict=%s policy=%s rule=%s reason=%q", e.Kind, e.PID, e.Op, e.Path, e.Target, e.PathScope, e.Addr, e.Port, e.Binary, e.Verdict, e.Policy, e.Rule, e.Reason)
		}
	}
	return b.String()
}

// harness is a running sensor watching a fresh cgroup.
type harness struct {
	s        *Sensor
	rec      *recorder
	cgroupID uint64
	cgroupFD int
}

// named does what a runtime watcher does when the runtime names a
// container: it enters the cache, and the sensor is told.
func (h *harness) named(cache *container.Cache, info container.Info) {
	cache.Put(info)
	h.s.ContainerStarted(info)
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	return newHarnessWith(tb, Config{})
}

// newHarnessWith starts a sensor with cfg, adding the watched cgroup and,
// after cfg's own sinks, the recorder.
func newHarnessWith(tb testing.TB, cfg Config) *harness {
	tb.Helper()
	testenv.Privileged(tb)
	root, err := hostfs.Cgroup2Root()
	if err != nil {
		tb.Fatal(err)
	}
	dir := filepath.Join(root, fmt.Sprintf("ringfence-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.Remove(dir) })
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(fd) })

	rec := &recorder{}
	cfg.WatchCgroups = []string{dir}
	cfg.Sinks = append(cfg.Sinks, rec)
	cfg.Interval = 200 * time.Millisecond
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if testenv.InVM() && s.Probe().Tier != kernel.TierFull {
		tb.Fatalf("test VM must give the full tier: %s", s.Probe().Reason)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("sensor run: %v", err)
		}
	})
	id, err := hostfs.CgroupID(root, dir)
	if err != nil {
		tb.Fatal(err)
	}
	return &harness{s: s, rec: rec, cgroupID: id, cgroupFD: fd}
}

// checkProcess asserts the process fields every event of the helper carries.
func (h *harness) checkProcess(tb testing.TB, e event.Event, pid uint32) {
	tb.Helper()
	if e.CgroupID != h.cgroupID || e.PID != pid || e.PPID != uint32(os.Getpid()) || e.UID != uint32(os.Getuid()) || e.Comm == "" {
		tb.Fatalf("process fields: got cgroup_id=%d pid=%d ppid=%d uid=%d comm=%q; want cgroup_id=%d pid=%d ppid=%d uid=%d",
			e.CgroupID, e.PID, e.PPID, e.UID, e.Comm, h.cgroupID, pid, os.Getpid(), os.Getuid())
	}
	if time.Since(e.Time) > time.Minute || time.Until(e.Time) > time.Second {
		tb.Fatalf("event time %s is not now", e.Time)
	}
}

// samePath accepts the path as the process sees it, or, for hooks that only
// see a dentry, the same path inside its filesystem.
func samePath(e *event.Event, got, want string) bool {
	if got == want {
		return true
	}
	return e.PathScope == "filesystem" && got != "/" && strings.HasSuffix(want, got)
}

// TestPrivilegedEvents runs every end-to-end case against one sensor: loading the
// programs is the slow part under emulation.
func TestPrivilegedEvents(t *testing.T) {
	h := newHarness(t)
	t.Run("file", func(t *testing.T) { testFileWriteEvents(t, h) })
	t.Run("relative-path", func(t *testing.T) { testRelativePathResolved(t, h) })
	t.Run("ia32", func(t *testing.T) { testIA32Syscalls(t, h) })
	t.Run("open-by-handle", func(t *testing.T) { testOpenByHandle(t, h) })
	t.Run("exec", func(t *testing.T) { testExecEvent(t, h) })
	t.Run("exit-status", func(t *testing.T) { testExitStatus(t, h) })
	t.Run("bind", func(t *testing.T) { testBindEvents(t, h) })
	t.Run("child-cgroup", func(t *testing.T) { testChildCgroupsAreWatched(t, h) })
	t.Run("syscall-counts", func(t *testing.T) { testSyscallCounts(t, h) })
	// Last: it checks that nothing the test process did all along was reported.
	t.Run("unwatched", func(t *testing.T) { testUnwatchedProducesNothing(t, h) })
}

// wantSource is the hook that must report file writes on this tier.
func wantSource() string {
	if testenv.InVM() {
		return "lsm"
	}
	return "tracepoint"
}

func testFileWriteEvents(t *testing.T, h *harness) {
	type fixture func(t *testing.T, dir string) (args []string, path, target string)
	file := func(t *testing.T, dir string) ([]string, string, string) {
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
		return []string{p}, p, ""
	}
	fresh := func(t *testing.T, dir string) ([]string, string, string) {
		p := filepath.Join(dir, "new")
		return []string{p}, p, ""
	}
	subdir := func(t *testing.T, dir string) ([]string, string, string) {
		p := filepath.Join(dir, "sub")
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return []string{p}, p, ""
	}
	move := func(t *testing.T, dir string) ([]string, string, string) {
		args, p, _ := file(t, dir)
		to := filepath.Join(dir, "moved")
		return append(args, to), p, to
	}
	linkTo := func(t *testing.T, dir string) ([]string, string, string) {
		_, p, _ := file(t, dir)
		l := filepath.Join(dir, "l")
		return []string{p, l}, l, p
	}
	symlinkTo := func(t *testing.T, dir string) ([]string, string, string) {
		l := filepath.Join(dir, "s")
		return []string{"target-of-s", l}, l, "target-of-s"
	}
	withACL := func(t *testing.T, dir string) ([]string, string, string) {
		args, p, _ := file(t, dir)
		if err := unix.Setxattr(p, aclXattr, testACL(), 0); err != nil {
			t.Fatalf("set a POSIX ACL (does the file system support them?): %v", err)
		}
		return args, p, ""
	}
	withXattr := func(t *testing.T, dir string) ([]string, string, string) {
		args, p, _ := file(t, dir)
		if err := unix.Setxattr(p, "trusted.ringfence", []byte("1"), 0); err != nil {
			t.Fatal(err)
		}
		return args, p, ""
	}
	cases := []struct {
		helper, op string
		setup      fixture
		// also lists the other events the helper causes on the same
		// path: ftruncate opens the file for write first.
		also []string
	}{
		{"open-write", "open", file, nil},
		{"create", "create", fresh, nil},
		{"open-trunc", "truncate", file, nil},
		{"truncate", "truncate", file, nil},
		{"ftruncate", "truncate", file, []string{"open"}},
		{"unlink", "unlink", file, nil},
		{"rmdir", "rmdir", subdir, nil},
		{"unlinkat-removedir", "rmdir", subdir, nil},
		{"rename", "rename", move, nil},
		{"renameat2-noreplace", "rename", move, nil},
		{"link", "link", linkTo, nil},
		{"symlink", "symlink", symlinkTo, nil},
		{"mkdir", "mkdir", fresh, nil},
		{"mknod", "mknod", fresh, nil},
		{"chmod", "chmod", file, nil},
		{"fchmod", "chmod", file, nil},
		{"chown", "chown", file, nil},
		{"fchown", "chown", file, nil},
		{"setxattr", "setxattr", file, nil},
		{"removexattr", "removexattr", withXattr, nil},
		{"setacl", "setxattr", file, nil},
		{"removeacl", "removexattr", withACL, nil},
		{"utimes", "utimes", file, nil},
		{"setflags", "ioctl", file, nil},
		{"fssetxattr", "ioctl", file, nil},
	}
	for _, c := range cases {
		t.Run(c.helper, func(t *testing.T) {
			args, path, target := c.setup(t, t.TempDir())
			p := startHelper(t, h.cgroupFD, c.helper, args...)
			e := h.rec.waitFor(t, c.op+" "+path, func(e *event.Event) bool {
				return e.Kind == event.KindFile && e.PID == p.Pid && e.Op == c.op && samePath(e, e.Path, path)
			})
			h.checkProcess(t, e, p.Pid)
			if e.Source != wantSource() {
				t.Fatalf("source %q, want %q", e.Source, wantSource())
			}
			if target != "" && !samePath(&event.Event{PathScope: "filesystem"}, e.Target, target) {
				t.Fatalf("target = %q, want %q", e.Target, target)
			}
			if c.op == "chown" && (e.OwnerUID == nil || e.OwnerGID == nil) {
				t.Fatalf("chown without owner: %+v", e)
			}
			if cmd := map[string]uint32{"setflags": unix.FS_IOC_SETFLAGS, "fssetxattr": fsIocFssetxattr}[c.helper]; cmd != 0 && e.Flags != cmd {
				t.Fatalf("%s: flags %#x, want the ioctl's command %#x", c.helper, e.Flags, cmd)
			}
			// Exactly one event per operation: once the helper's exit
			// is reported, everything it did before is too.
			var ops []string
			for _, e := range h.fileEventsOf(t, p) {
				if samePath(&e, e.Path, path) {
					ops = append(ops, e.Op)
				}
			}
			want := append([]string{c.op}, c.also...)
			sort.Strings(ops)
			sort.Strings(want)
			if strings.Join(ops, ",") != strings.Join(want, ",") {
				t.Fatalf("events on %s: %v, want exactly %v%s", path, ops, want, h.rec.dump())
			}
		})
	}
}

func testRelativePathResolved(t *testing.T, h *harness) {
	dir := t.TempDir()
	p := startHelper(t, h.cgroupFD, "relative-create", dir, "rel.txt")
	want := filepath.Join(dir, "rel.txt")
	e := h.rec.waitFor(t, "create "+want, func(e *event.Event) bool {
		return e.Kind == event.KindFile && e.PID == p.Pid && e.Op == "create" && e.Path == want
	})
	if e.PathScope != "" {
		t.Fatalf("path scope %q for a resolved path", e.PathScope)
	}
}

// fileEventsOf waits for the exit of helper p and returns its file events.
// The exit is the marker: the operations were done, and their records
// written to the ring, before it, and the pipeline keeps the ring's order.
func (h *harness) fileEventsOf(t *testing.T, p *helperProc) []event.Event {
	t.Helper()
	p.stop()
	h.rec.waitFor(t, "exit", func(e *event.Event) bool { return e.Kind == event.KindExit && e.PID == p.Pid })
	var out []event.Event
	for _, e := range h.rec.all() {
		if e.Kind == event.KindFile && e.PID == p.Pid {
			out = append(out, e)
		}
	}
	return out
}

// testIA32Syscalls makes syscalls through the ia32 entry, whose numbers
// mean other syscalls on x86-64: an ia32 open (5, fstat on x86-64) must be
// reported as the create it is, an ia32 readlink (85, creat on x86-64) as
// nothing, and both counted under their ia32 numbers. On a machine that
// refuses 32-bit syscalls the route is closed: the process that tries is
// killed by the fault and creates nothing.
func testIA32Syscalls(t *testing.T, h *harness) {
	world, err := kernel.ProbeIA32()
	if err != nil {
		t.Fatal(err)
	}
	t.Log("this machine: " + world.How)
	dir := t.TempDir()
	created := filepath.Join(dir, "ia32-created")
	if !world.Allowed {
		err := runHelperToEnd(h.cgroupFD, "ia32-create", created)
		if !world.Closed(err) {
			t.Fatalf("32-bit syscalls fault on this machine, yet an ia32 open ended with %v", err)
		}
		if _, err := os.Stat(created); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a refused ia32 open made %s: %v", created, err)
		}
		return
	}
	p := startHelper(t, h.cgroupFD, "ia32-create", created)
	e := h.rec.waitFor(t, "ia32 create", func(e *event.Event) bool {
		return e.Kind == event.KindFile && e.PID == p.Pid && e.Op == "create" && e.Path == created
	})
	h.checkProcess(t, e, p.Pid)
	if e.Source != wantSource() {
		t.Fatalf("source %q, want %q", e.Source, wantSource())
	}
	if evs := h.fileEventsOf(t, p); len(evs) != 1 {
		t.Fatalf("ia32 open: %d file events, want 1: %+v", len(evs), evs)
	}

	link := filepath.Join(dir, "ia32-link")
	if err := os.Symlink("somewhere", link); err != nil {
		t.Fatal(err)
	}
	r := startHelper(t, h.cgroupFD, "ia32-readlink", link)
	if evs := h.fileEventsOf(t, r); len(evs) != 0 {
		t.Fatalf("an ia32 readlink gave file events: %+v", evs)
	}
	// An ia32 ioctl that changes a file (its 32-bit command; file_ioctl_compat
	// from 6.8, file_ioctl before).
	flagged := filepath.Join(dir, "ia32-flagged")
	if err := os.WriteFile(flagged, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c := startHelper(t, h.cgroupFD, "ia32-setflags", flagged)
	e = h.rec.waitFor(t, "ia32 ioctl", func(e *event.Event) bool {
		return e.Kind == event.KindFile && e.PID == c.Pid && e.Op == "ioctl" && e.Path == flagged
	})
	if e.Flags != 0x40046602 || e.Source != wantSource() {
		t.Fatalf("ia32 FS_IOC32_SETFLAGS: flags %#x source %q, want 0x40046602 %q", e.Flags, e.Source, wantSource())
	}
	for _, nr := range []string{"ia32:5", "ia32:85", "ia32:54"} {
		h.rec.waitFor(t, nr+" syscall count", func(e *event.Event) bool {
			return e.Kind == event.KindSyscalls && e.CgroupID == h.cgroupID && e.Counts[nr] > 0
		})
	}
}

// testOpenByHandle opens a file for write by its handle: no path in the
// syscall, so the tracepoint names the handle's filesystem (its mount_fd,
// the file's directory here); the LSM hook sees the file itself.
func testOpenByHandle(t *testing.T, h *harness) {
	dir := t.TempDir()
	f := filepath.Join(dir, "by-handle")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := startHelper(t, h.cgroupFD, "open-by-handle", f)
	wantPath, wantScope := dir, "file-handle"
	if testenv.InVM() {
		wantPath, wantScope = f, ""
	}
	e := h.rec.waitFor(t, "open by handle", func(e *event.Event) bool {
		return e.Kind == event.KindFile && e.PID == p.Pid && e.Op == "open" && e.Path == wantPath
	})
	h.checkProcess(t, e, p.Pid)
	if e.PathScope != wantScope || e.Source != wantSource() {
		t.Fatalf("path scope %q source %q, want %q %q", e.PathScope, e.Source, wantScope, wantSource())
	}
}

func testExecEvent(t *testing.T, h *harness) {
	p := startHelper(t, h.cgroupFD, "exec", "first arg", "second")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e := h.rec.waitFor(t, "exec", func(e *event.Event) bool {
		return e.Kind == event.KindExec && e.PID == p.Pid && len(e.Args) > 0 && e.Args[0] == "rf-exec-marker"
	})
	h.checkProcess(t, e, p.Pid)
	if e.Binary != self || strings.Join(e.Args, "|") != "rf-exec-marker|first arg|second" {
		t.Fatalf("binary %q args %q; want %q [rf-exec-marker first arg second]", e.Binary, e.Args, self)
	}
	p.stop()
	x := h.rec.waitFor(t, "exit", func(e *event.Event) bool { return e.Kind == event.KindExit && e.PID == p.Pid })
	if x.ExitCode == nil || *x.ExitCode != 0 {
		t.Fatalf("exit code %v", x.ExitCode)
	}
}

// testExitStatus checks an exit event's status as a shell shows it (exit
// 3: 3) and, for a killed process, its signal and no status.
func testExitStatus(t *testing.T, h *harness) {
	cmd := helperCmd(h.cgroupFD, "exit", "3")
	if err := cmd.Run(); cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 3 {
		t.Fatalf("helper exit 3: %v", err)
	}
	pid := uint32(cmd.Process.Pid)
	x := h.rec.waitFor(t, "exit 3", func(e *event.Event) bool { return e.Kind == event.KindExit && e.PID == pid })
	if x.ExitCode == nil || *x.ExitCode != 3 || x.Signal != 0 {
		t.Fatalf("exit 3 reported as exit_code %v, signal %d", deref(x.ExitCode), x.Signal)
	}
	p := startHelper(t, h.cgroupFD, "noop")
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.stop()
	k := h.rec.waitFor(t, "killed", func(e *event.Event) bool { return e.Kind == event.KindExit && e.PID == p.Pid })
	if k.ExitCode != nil || k.Signal != 9 || k.CoreDumped {
		t.Fatalf("SIGKILL reported as exit_code %v, signal %d, core dumped %v", deref(k.ExitCode), k.Signal, k.CoreDumped)
	}
}

// deref shows a pointer's value, or nil.
func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func freePort(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func testBindEvents(t *testing.T, h *harness) {
	cases := []struct{ helper, family, addr, proto string }{
		{"bind4", "inet", "0.0.0.0", "tcp"},
		{"bind6", "inet6", "::", "tcp"},
		{"bind-udp4", "inet", "127.0.0.1", "udp"},
	}
	for _, c := range cases {
		t.Run(c.helper, func(t *testing.T) {
			port := freePort(t)
			p := startHelper(t, h.cgroupFD, c.helper, port)
			e := h.rec.waitFor(t, "bind "+port, func(e *event.Event) bool {
				return e.Kind == event.KindBind && e.PID == p.Pid && strconv.Itoa(int(e.Port)) == port
			})
			h.checkProcess(t, e, p.Pid)
			if e.Family != c.family || e.Addr != c.addr || e.Proto != c.proto {
				t.Fatalf("bind event %s %s %s, want %s %s %s", e.Family, e.Addr, e.Proto, c.family, c.addr, c.proto)
			}
		})
	}
}

// testUnwatchedProducesNothing runs the same operations outside the watched
// cgroup: none of them may produce an event.
func testUnwatchedProducesNothing(t *testing.T, h *harness) {
	dir := t.TempDir()
	// The test process itself is outside the watched cgroup.
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A marker from inside proves the sensor was reading meanwhile.
	p := startHelper(t, h.cgroupFD, "mkdir", filepath.Join(dir, "marker"))
	h.rec.waitFor(t, "marker", func(e *event.Event) bool { return e.PID == p.Pid && e.Op == "mkdir" })
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	for _, e := range h.rec.events {
		if e.PID == uint32(os.Getpid()) {
			t.Fatalf("event from the unwatched test process: %+v", e)
		}
	}
}

// testChildCgroupsAreWatched checks that a cgroup created below a watched
// one is watched from its creation, with no help from userspace.
func testChildCgroupsAreWatched(t *testing.T, h *harness) {
	root, _ := hostfs.Cgroup2Root()
	var parent string
	for _, d := range mustReadDir(t, root) {
		if id, err := hostfs.CgroupID(root, d); err == nil && id == h.cgroupID {
			parent = filepath.Join(root, d)
		}
	}
	if parent == "" {
		t.Fatal("watched cgroup not found")
	}
	child := filepath.Join(parent, "child")
	childID := makeCgroup(t, root, child)
	fd := cgroupFD(t, child)
	p := startHelper(t, fd, "mkdir", filepath.Join(t.TempDir(), "in-child"))
	e := h.rec.waitFor(t, "mkdir in child cgroup", func(e *event.Event) bool { return e.PID == p.Pid && e.Op == "mkdir" })
	if e.CgroupID != childID {
		t.Fatalf("cgroup_id %d, want the child's %d", e.CgroupID, childID)
	}
	p.stop()
}

func mustReadDir(tb testing.TB, dir string) []string {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// testSyscallCounts checks the periodic per-cgroup syscall counts: the
// helper's mkdirat (258 on x86-64) must be counted against its cgroup.
func testSyscallCounts(t *testing.T, h *harness) {
	p := startHelper(t, h.cgroupFD, "mkdir", filepath.Join(t.TempDir(), "counted"))
	p.stop()
	e := h.rec.waitFor(t, "syscalls", func(e *event.Event) bool {
		return e.Kind == event.KindSyscalls && e.CgroupID == h.cgroupID && e.Counts[strconv.Itoa(unix.SYS_MKDIRAT)] > 0
	})
	if e.Counts[strconv.Itoa(unix.SYS_MKDIRAT)] > 1000 {
		t.Fatalf("implausible count: %v", e.Counts)
	}
}

// TestPrivilegedRingFullIsCounted overflows a one-page ring: the kernel must count what
// it could not deliver, and the sensor must report it.
func TestPrivilegedRingFullIsCounted(t *testing.T) {
	h := newHarnessWith(t, Config{RingBytes: uint32(os.Getpagesize())})
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	startHelper(t, h.cgroupFD, "open-write-loop", f, "20000").stop()
	e := h.rec.waitFor(t, "events lost", func(e *event.Event) bool {
		return e.Kind == event.KindSensor && e.Counts["ring_full_file"] > 0
	})
	// Every open produced exactly one record: delivered + lost must add up.
	const generated = 20000
	deadline := time.Now().Add(10 * time.Second)
	for {
		lost, err := h.s.Lost()
		if err != nil {
			t.Fatal(err)
		}
		if lost["ring_full_file"] < e.Counts["ring_full_file"] {
			t.Fatalf("counter went backwards: reported %d, now %d", e.Counts["ring_full_file"], lost["ring_full_file"])
		}
		var delivered uint64
		h.rec.mu.Lock()
		for _, ev := range h.rec.events {
			if ev.Kind == event.KindFile && ev.Path == f && ev.Op == "open" {
				delivered++
			}
		}
		h.rec.mu.Unlock()
		if delivered+lost["ring_full_file"] == generated {
			t.Logf("%d delivered, %d lost", delivered, lost["ring_full_file"])
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d delivered + %d lost != %d generated (every loss counter: %v)", delivered, lost["ring_full_file"], generated, lost)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPrivilegedHoldUntilClassified creates a "container" cgroup below a runtime
// parent: the kernel must stop its first exec before the first instruction,
// keep it stopped until the container is known, then let it run; one whose
// cgroup path names it runs after the timeout, named from it; one nobody
// names stays held, reported, until it is named, counted as a timeout.
func TestPrivilegedHoldUntilClassified(t *testing.T) {
	testenv.Privileged(t)
	root, parent := runtimeParent(t, "classify")
	cache := container.NewCache(container.CacheConfig{})
	h := newHarnessWith(t, Config{Containers: cache, RuntimeParents: []string{parent}, HoldTimeout: 3 * time.Second})

	scopeID := strings.Repeat("ab12", 16)
	for _, c := range []struct {
		name     string
		classify bool
		outcome  string
		wantID   string
	}{
		{"classified", true, "released", "ctr-classified"},
		{"unclassifiable.service", false, "timeout", ""}, // a unit name: no container id in its path, named late
		// Unknown to the runtime, but its path says whose it is.
		{"cri-containerd-" + scopeID + ".scope", false, "cgroup-path", scopeID},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, id, started := startHeld(t, root, parent, c.name)

			// The helper is stopped: its first exec is held.
			pid := waitStoppedIn(t, dir)
			if c.classify {
				h.named(cache, container.Info{ID: "ctr-" + c.name, Name: c.name, Image: "test/image", CgroupID: id})
			}
			if c.outcome == "timeout" {
				// Nobody names it in time: it stays held, reported,
				// until the runtime names it.
				h.rec.waitFor(t, "the unnamed container reported", func(e *event.Event) bool {
					return e.Kind == event.KindViolation && e.CgroupID == id && e.Rule == hold.RuleApply
				})
				if !hostfs.Stopped("/proc", uint32(pid)) {
					t.Fatal("a container nobody named was let go")
				}
				h.named(cache, container.Info{ID: "ctr-late", Name: c.name, Image: "test/image", CgroupID: id})
				c.wantID = "ctr-late"
			}
			var p *helperProc
			select {
			case p = <-started:
			case <-time.After(10 * time.Second):
				t.Fatal("held process never released")
			}
			if p.Pid != uint32(pid) {
				t.Fatalf("stopped pid %d, helper pid %d", pid, p.Pid)
			}
			e := h.rec.waitFor(t, "held exec", func(e *event.Event) bool { return e.Kind == event.KindExec && e.PID == p.Pid })
			if e.HoldOutcome != c.outcome {
				t.Fatalf("hold outcome %q, want %q", e.HoldOutcome, c.outcome)
			}
			if c.wantID != "" && (e.Container == nil || e.Container.ID != c.wantID) {
				t.Fatalf("held exec without its container %s: %+v", c.wantID, e.Container)
			}
		})
	}
	counts := h.s.Snapshot().Holds
	if counts["held_execs"] != 3 || counts["classified"] != 1 || counts["timeout"] != 1 || counts["cgroup_path"] != 1 {
		t.Fatalf("hold counts %v", counts)
	}
}

// waitStoppedIn waits for a stopped process in the cgroup dir and returns it.
func waitStoppedIn(tb testing.TB, dir string) int {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		pids, _ := hostfs.CgroupProcs(dir, "")
		for _, pid := range pids {
			if hostfs.Stopped("/proc", pid) {
				return int(pid)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	var states []string
	for _, f := range strings.Fields(string(b)) {
		st, _ := os.ReadFile("/proc/" + f + "/stat")
		states = append(states, string(st))
	}
	tb.Fatalf("no stopped process in %s: %q", dir, states)
	return 0
}

// TestPrivilegedStopReleasesHolds stops a sensor while a container's first exec is
// held: the process runs on, and the kernel holds nothing afterwards.
func TestPrivilegedStopReleasesHolds(t *testing.T) {
	testenv.Privileged(t)
	root, parent := runtimeParent(t, "stop")
	cache := container.NewCache(container.CacheConfig{})
	s, err := New(Config{Containers: cache, RuntimeParents: []string{parent}, HoldTimeout: time.Minute, Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	dir, _, started := startHeld(t, root, parent, "held")
	waitStoppedIn(t, dir)
	cancel() // unclassified, and a minute from its timeout
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the held process stayed stopped after the sensor stopped")
	}
}

// runtimeParent makes a cgroup to register as a runtime parent and returns
// the cgroup2 mount and its name below it.
func runtimeParent(tb testing.TB, what string) (root, parent string) {
	tb.Helper()
	root, err := hostfs.Cgroup2Root()
	if err != nil {
		tb.Fatal(err)
	}
	parent = fmt.Sprintf("ringfence-runtime-%s-%d", what, os.Getpid())
	if err := os.Mkdir(filepath.Join(root, parent), 0o755); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.Remove(filepath.Join(root, parent)) })
	return root, parent
}

// startHeld creates the "container" cgroup name below parent and starts the
// helper in it; the helper arrives on the channel once it has run.
func startHeld(tb testing.TB, root, parent, name string) (string, uint64, chan *helperProc) {
	tb.Helper()
	dir := filepath.Join(root, parent, name)
	id := makeCgroup(tb, root, dir)
	fd := cgroupFD(tb, dir)
	started := make(chan *helperProc, 1)
	go func() { started <- startHelper(tb, fd, "noop") }()
	return dir, id, started
}

// makeCgroup creates the cgroup dir, removed when tb ends, and returns its id.
func makeCgroup(tb testing.TB, root, dir string) uint64 {
	tb.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.Remove(dir) })
	id, err := hostfs.CgroupID(root, dir)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// cgroupFD opens the cgroup dir for starting processes in it; the
// descriptor is closed when tb ends.
func cgroupFD(tb testing.TB, dir string) int {
	tb.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	return fd
}
