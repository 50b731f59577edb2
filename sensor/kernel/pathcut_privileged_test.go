package kernel

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/bpf"
	"github.com/ringfence/ringfence/sensor/decode"
	"github.com/ringfence/ringfence/sensor/event"
)

// TestPrivilegedPathsCutShort: a file event whose path the kernel could not
// read whole says so (path_scope "truncated") rather than pass its first
// bytes or its deepest names for the path: a path deeper than the walk
// goes, one longer than the buffer, one across more mounts than the walk
// takes steps. A whole path is not marked.
func TestPrivilegedPathsCutShort(t *testing.T) {
	s, p := loadCommitted(t)
	cg, cgFD := watchedCgroup(t, s, p, fmt.Sprintf("ringfence-pathcut-%d", os.Getpid()))
	ring, err := s.OpenRing()
	if err != nil {
		t.Fatal(err)
	}
	full := s.Tier() == TierFull

	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// 40 names below base: deeper than the walk's 32.
	deep := base
	for i := range 40 {
		deep = filepath.Join(deep, fmt.Sprintf("d%d", i))
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	// 24 mounts one below the other: fewer names than 32, but with the
	// mounts crossed more steps than the walk takes.
	mounts := filepath.Join(base, "m")
	if err := os.Mkdir(mounts, 0o755); err != nil {
		t.Fatal(err)
	}
	nested := mounts
	for i := range 24 {
		if err := unix.Mount("tmpfs", nested, "tmpfs", 0, "size=64k"); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			t.Cleanup(func() { unix.Unmount(mounts, unix.MNT_DETACH) })
		}
		nested = filepath.Join(nested, "m")
		if err := os.Mkdir(nested, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	whole := filepath.Join(base, "whole")
	long := filepath.Join(base, "long")
	// The long file named by a path of 700 bytes: "./" over and over.
	longPath := base + strings.Repeat("/.", 350) + "/long"

	for _, w := range []struct{ dir, script string }{
		{deep, `echo x >f`},
		{nested, `echo x >f`},
		{base, `echo x >"$1"`},
		{base, `echo x >whole`},
	} {
		cmd := exec.Command("/bin/sh", "-c", w.script, "sh", longPath)
		cmd.Dir = w.dir
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgFD}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s in %s: %v: %s", w.script, w.dir, err, out)
		}
	}

	// The first record of each write, by the file written.
	var (
		mu   sync.Mutex
		got  = map[string]event.Event{}
		last = time.Now()
	)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dec := decode.New(time.Now(), nil)
	done := make(chan error, 1)
	go func() {
		done <- ring.Run(ctx, func(raw []byte) {
			e, _, err := dec.Decode(raw)
			if err != nil || e.CgroupID != cg || e.Kind != event.KindFile {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			last = time.Now()
			for _, k := range []string{"/d39/f", "/m/m/f", "/long", "/whole"} {
				// The long path's record: its end, or its first bytes.
				match := strings.HasSuffix(e.Path, k) || k == "/long" && strings.HasPrefix(e.Path, base+"/./.")
				if _, seen := got[k]; !seen && match {
					got[k] = e
				}
			}
		})
	}()
	for {
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		enough := len(got) == 4 || time.Since(last) > 2*time.Second
		mu.Unlock()
		if enough || ctx.Err() != nil {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()

	check := func(key, what, scope, path string) {
		e, ok := got[key]
		if !ok {
			t.Errorf("%s: no file record ending in %s", what, key)
			return
		}
		if e.PathScope != scope {
			t.Errorf("%s: %s of %q, path_scope %q, want %q", what, e.Op, e.Path, e.PathScope, scope)
		}
		if path != "" && e.Path != path {
			t.Errorf("%s: path %q, want %q", what, e.Path, path)
		}
		if scope == decode.ScopeTruncated && e.Path == filepath.Join(deep, "f") {
			t.Errorf("%s: path %q whole although marked cut", what, e.Path)
		}
	}
	check("/d39/f", "a file 41 names deep", decode.ScopeTruncated, "")
	check("/m/m/f", "a file below 24 mounts", decode.ScopeTruncated, "")
	if full {
		// The LSM hooks read the path the kernel resolved: whole.
		check("/long", "a file named by a 700-byte path", "", long)
	} else {
		check("/long", "a file named by a 700-byte path", decode.ScopeTruncated, "")
	}
	check("/whole", "a file named whole", "", whole)
}

// TestPrivilegedDeepObjectBelowRoot: a container root below the top of its
// filesystem (a bind mount, a directory snapshotter) and an object in it
// deeper than the walk goes, whose deepest names alone cannot be placed
// below any root. With the LSM hooks a write to it is placed by the top
// of its path and refused under the root's owner's strictest read-only
// rule, its violation's path marked cut; it was let through as "below no
// root".
// Without them nothing is refused here (the kernel judges nothing).
func TestPrivilegedDeepObjectBelowRoot(t *testing.T) {
	s, root, cgFD, _ := recordRuleAt(t, "containers/c1/rootfs")
	deep := root
	for i := range 40 {
		deep = filepath.Join(deep, fmt.Sprintf("d%d", i))
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(deep, "f")
	if err := os.WriteFile(target, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := s.ViolationCounts()
	if err != nil {
		t.Fatal(err)
	}
	ring, err := s.OpenRing()
	if err != nil {
		t.Fatal(err)
	}
	got := writeIn(t, cgFD, target)[target]
	if s.Tier() != TierFull {
		if got != "ok" {
			t.Fatalf("a write without the LSM hooks: %s", got)
		}
		return
	}
	if !strings.Contains(got, "not permitted") {
		t.Fatalf("a write 41 names below a root that is not its filesystem's top: %s, want refused", got)
	}
	if b, _ := os.ReadFile(target); string(b) != "original" {
		t.Errorf("the file changed: %q", b)
	}
	after, err := s.ViolationCounts()
	if err != nil {
		t.Fatal(err)
	}
	if k := "readOnlyRootFilesystem/deny"; after[k] <= before[k] {
		t.Errorf("%s %d before, %d after", k, before[k], after[k])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dec := decode.New(time.Now(), nil)
	var v *event.Event
	ring.Run(ctx, func(raw []byte) {
		if e, _, err := dec.Decode(raw); err == nil && e.Kind == event.KindViolation && strings.HasSuffix(e.Path, "/d39/f") {
			v = &e
			cancel()
		}
	})
	if v == nil || v.PathScope != decode.ScopeTruncated || v.Verdict != event.VerdictDeny {
		t.Errorf("the violation: %+v, want a denial with its path marked cut", v)
	}
}

// TestPrivilegedRootBelowTopEveryLength: a root below the top of its
// filesystem holds the objects in it whatever the length of their paths.
// Files named by 1 to 40 bytes are made in it (paths of 23 to 62 bytes from
// the filesystem's root), each refused on the full tier; a file in its
// allowed /tmp is not. The lookup of the root once wrote the '/' it
// appends to a path at an index masked with ROOT_PATH_LEN - 1, which is no
// power of two: paths whose length had bit 3 set were placed below no root
// and let through.
func TestPrivilegedRootBelowTopEveryLength(t *testing.T) {
	s, root, cgFD, _ := recordRuleAt(t, "containers/c1/rootfs")
	var paths []string
	for n := 1; n <= 40; n++ {
		paths = append(paths, filepath.Join(root, strings.Repeat("f", n)))
	}
	allowed := filepath.Join(root, "tmp", "ok")
	got := writeIn(t, cgFD, append(paths, allowed)...)
	if got[allowed] != "ok" {
		t.Errorf("a write to the root's /tmp (allowed): %s", got[allowed])
	}
	for _, p := range paths {
		rel := strings.TrimPrefix(p, filepath.Dir(filepath.Dir(filepath.Dir(root))))
		if s.Tier() != TierFull {
			if got[p] != "ok" {
				t.Errorf("a write without the LSM hooks to %s: %s", rel, got[p])
			}
			continue
		}
		if !strings.Contains(got[p], "not permitted") {
			t.Errorf("a write to %s (%d bytes from the filesystem's root), in a read-only root: %s, want refused", rel, len(rel), got[p])
		} else if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was made", rel)
		}
	}
}

// TestPrivilegedDeepObjectOfAnotherRoot: an object deeper than the walk
// goes, in a container root below the top of its filesystem, written by a
// process of another watched container that has no read-only rule. The
// object's deepest names cannot be placed, so its root is found by the top
// of its path, and the write is refused under the root's owner's rule
// whoever writes; it was judged under the writer's rules, none, and let
// through. An object as deep in no root on the same device stays writable,
// by the root's owner too: its top places it below none.
func TestPrivilegedDeepObjectOfAnotherRoot(t *testing.T) {
	s, root, ownerFD, _ := recordRuleAt(t, "containers/c1/rootfs")
	p, err := ProbeTier()
	if err != nil {
		t.Fatal(err)
	}
	_, otherFD := watchedCgroup(t, s, p, fmt.Sprintf("ringfence-other-writer-%d", os.Getpid()))
	deepFile := func(top string) string {
		d := top
		for i := range 40 {
			d = filepath.Join(d, fmt.Sprintf("d%d", i))
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(d, "f")
		if err := os.WriteFile(f, []byte("original"), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	inRoot := deepFile(root)
	// Beside the containers' directory, on the same tmpfs.
	outside := deepFile(filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(root))), "elsewhere"))
	before, err := s.ViolationCounts()
	if err != nil {
		t.Fatal(err)
	}
	got := writeIn(t, otherFD, inRoot, outside)
	ownerGot := writeIn(t, ownerFD, outside)
	if ownerGot[outside] != "ok" || got[outside] != "ok" {
		t.Errorf("writes 41 names deep in no container's root: by the other container %s, by the root's owner %s; want both ok", got[outside], ownerGot[outside])
	}
	if s.Tier() != TierFull {
		if got[inRoot] != "ok" {
			t.Fatalf("a write without the LSM hooks: %s", got[inRoot])
		}
		return
	}
	if !strings.Contains(got[inRoot], "not permitted") {
		t.Fatalf("a write 41 names deep in a read-only root, by another container with no read-only rule: %s, want refused", got[inRoot])
	}
	if b, _ := os.ReadFile(inRoot); string(b) != "original" {
		t.Errorf("the file changed: %q", b)
	}
	after, err := s.ViolationCounts()
	if err != nil {
		t.Fatal(err)
	}
	if k := "readOnlyRootFilesystem/deny"; after[k] != before[k]+1 {
		t.Errorf("%s %d before, %d after, want one more", k, before[k], after[k])
	}
}

// detachedWriteEnv makes the test binary, run as a helper, the writer of
// TestPrivilegedPathsDetached: it waits for a line on stdin, then writes
// /abs and rel (relative to its cwd) and exits.
const detachedWriteEnv = "RINGFENCE_KERNEL_TEST_DETACHED_WRITE"

// staleTruncEnv makes the test binary, run as a helper, the writer of
// TestPrivilegedTruncateJudgedWhateverTheOpen, on the file it names.
const staleTruncEnv = "RINGFENCE_KERNEL_TEST_STALE_TRUNCATE"

func TestMain(m *testing.M) {
	if os.Getenv(detachedWriteEnv) == "1" {
		os.Exit(detachedWrite())
	}
	if p := os.Getenv(staleTruncEnv); p != "" {
		os.Exit(staleTruncate(p))
	}
	os.Exit(m.Run())
}

// staleTruncate prints its thread id, waits for a line, opens p for
// writing (its hooks walk p, and refuse it), says so, waits for another
// line, truncates p by its path and prints how that went: every syscall
// from the one thread.
func staleTruncate(p string) int {
	runtime.LockOSThread()
	in := bufio.NewReader(os.Stdin)
	fmt.Println(unix.Gettid())
	in.ReadString('\n')
	_, err := unix.Open(p, unix.O_WRONLY, 0)
	fmt.Println("open", resultOf(err))
	in.ReadString('\n')
	fmt.Println("truncate", resultOf(unix.Truncate(p, 0)))
	return 0
}

func resultOf(err error) string {
	if err == nil {
		return "ok"
	}
	return unix.ErrnoName(err.(syscall.Errno))
}

func detachedWrite() int {
	if _, err := io.ReadAll(io.LimitReader(os.Stdin, 1)); err != nil {
		return 2
	}
	for _, p := range []string{"/abs", "rel"} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

// TestPrivilegedPathsDetached: a process chrooted into a mount, and with its
// cwd there, that the mount namespace then loses (umount -l): the paths
// its writes resolve to name nothing in the namespace. Both writes' records
// say so (path_scope "truncated") rather than pass "/abs" and "/rel" for
// the namespace's own /abs and /rel.
func TestPrivilegedPathsDetached(t *testing.T) {
	s, p := loadCommitted(t)
	_, cgFD := watchedCgroup(t, s, p, fmt.Sprintf("ringfence-detached-%d", os.Getpid()))
	mp := t.TempDir()
	if err := unix.Mount("tmpfs", mp, "tmpfs", 0, "size=128m"); err != nil {
		t.Fatal(err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	})
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mp, "helper"), self, 0o755); err != nil {
		t.Fatal(err)
	}
	ring, err := s.OpenRing()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/helper")
	cmd.Env = append(os.Environ(), detachedWriteEnv+"=1")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: mp, UseCgroupFD: true, CgroupFD: cgFD}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal(err)
	}
	mounted = false
	stdin.Write([]byte("\n"))
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("writer: %v: %s", err, out.String())
	}
	pid := uint32(cmd.Process.Pid)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dec := decode.New(time.Now(), nil)
	got := map[string]event.Event{}
	ring.Run(ctx, func(raw []byte) {
		e, _, err := dec.Decode(raw)
		if err != nil || e.PID != pid || e.Kind != event.KindFile {
			return
		}
		for _, k := range []string{"abs", "rel"} {
			if _, seen := got[k]; !seen && strings.HasSuffix(e.Path, "/"+k) {
				got[k] = e
			}
		}
		if len(got) == 2 {
			cancel()
		}
	})
	for _, k := range []string{"abs", "rel"} {
		e, ok := got[k]
		if !ok {
			t.Errorf("no file record of %s", k)
			continue
		}
		if e.PathScope != decode.ScopeTruncated {
			t.Errorf("%s in a detached mount: %s of %q, path_scope %q, want %q", k, e.Op, e.Path, e.PathScope, decode.ScopeTruncated)
		}
	}
}

// TestPrivilegedTruncateJudgedWhateverTheOpen: the truncate hooks stay
// quiet about the truncation of an O_TRUNC open that file_open reported
// (open_truncs: the thread and the file's dentry), but judge it all the
// same. An entry an open left behind (it failed after file_open) names a
// dentry that may be freed and its address reused by another file's:
// here the test puts in the thread's entry the dentry of a file the
// read-only rule forbids, as such a reuse would. With the LSM hooks the
// truncation is refused; it was let through unjudged. (Without them
// nothing is refused here.)
func TestPrivilegedTruncateJudgedWhateverTheOpen(t *testing.T) {
	s, root, cgFD := recordRule(t)
	target := filepath.Join(root, "t")
	if err := os.WriteFile(target, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), staleTruncEnv+"="+target)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgFD}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := bufio.NewReader(stdout)
	line := func() string {
		l, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("helper: %v", err)
		}
		return strings.TrimSpace(l)
	}
	tid, err := strconv.Atoi(line())
	if err != nil {
		t.Fatal(err)
	}
	stdin.Write([]byte("\n"))
	opened := line()
	full := s.Tier() == TierFull
	if !full {
		stdin.Write([]byte("\n"))
		if got := line(); got != "truncate ok" {
			t.Fatalf("without the LSM hooks: %s", got)
		}
		return
	}
	if opened != "open EPERM" {
		t.Fatalf("opening the forbidden file for writing: %s", opened)
	}
	// The name its hooks walked first is the file's own: inline in its
	// dentry (a short name), which gives the dentry's address.
	pidfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	var r bpf.SensorEnforceScratch
	if err := s.maps.TaskRecords.Lookup(uint32(pidfd), &r); err != nil {
		t.Fatal(err)
	}
	kernelBTF, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	var dentry *btf.Struct
	if err := kernelBTF.TypeByName("dentry", &dentry); err != nil {
		t.Fatal(err)
	}
	off := -1
	for _, m := range dentry.Members {
		if m.Name == "d_iname" || m.Name == "d_shortname" {
			off = int(m.Offset.Bytes())
		}
	}
	if off < 0 {
		t.Fatal("struct dentry has no inline name")
	}
	key := uint64(cmd.Process.Pid)<<32 | uint64(tid)
	addr := r.Ps.Names[0] - uint64(off)
	if err := s.maps.OpenTruncs.Put(key, addr); err != nil {
		t.Fatal(err)
	}
	stdin.Write([]byte("\n"))
	if got := line(); got != "truncate EPERM" {
		t.Errorf("truncating the forbidden file with an open's entry naming its dentry: %s, want EPERM", got)
	}
	if b, _ := os.ReadFile(target); string(b) != "original" {
		t.Errorf("the file changed: %q", b)
	}
}
