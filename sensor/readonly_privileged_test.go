package sensor

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/hostfs"
	"github.com/ringfence/ringfence/test/testenv"
)

// runBatchIn runs the batch helper with ops in the cgroup open at
// cgroupFD and returns its output once it exits.
func runBatchIn(tb testing.TB, cgroupFD int, ops []string) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$"}, ops...)...)
	cmd.Env = append(os.Environ(), helperEnv+"=batch", helperArgcEnv+"="+strconv.Itoa(len(ops)))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgroupFD}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		tb.Fatalf("batch helper: %v\n%s", err, out.String())
	}
	return out.String()
}

// writeRoute is one way of changing a file system, tried as the batch
// helper's op on fixtures the setup made, with the path it changes.
type writeRoute struct {
	name, op string
	args     []string
	path     string // the object a violation names
	// letThrough is what the call returns where the rule lets it happen
	// ("" for ok): a btrfs ioctl elsewhere is ENOTTY, after the hooks.
	letThrough string
	// newSyscall: a kernel older than the syscall answers ENOSYS, and
	// the route is not there to take.
	newSyscall bool
}

// writeRoutes lists every route, each on its own fixture so that all of
// them can succeed in one run (audit mode).
func writeRoutes() []writeRoute {
	r := func(name, op, path string, args ...string) writeRoute {
		return writeRoute{name: name, op: op, args: args, path: path}
	}
	return []writeRoute{
		r("open-write", "open-write", "/w-open", "/w-open"),
		r("create", "create", "/new-create", "/new-create"),
		r("open-trunc", "open-trunc", "/w-otrunc", "/w-otrunc"),
		r("truncate", "truncate", "/w-trunc", "/w-trunc"),
		r("ftruncate", "ftruncate", "/w-ftrunc", "/w-ftrunc"),
		r("fallocate", "fallocate", "/w-falloc", "/w-falloc"),
		r("tmpfile", "tmpfile", "/#", "/"), // the kernel names an unnamed file "#<inode>"
		r("unlink", "unlink", "/w-unlink", "/w-unlink"),
		r("rmdir", "rmdir", "/d-rmdir", "/d-rmdir"),
		r("unlinkat-removedir", "unlinkat-removedir", "/d-unlinkat", "/d-unlinkat"),
		r("rename", "rename", "/w-rename", "/w-rename", "/w-renamed"),
		r("renameat2-noreplace", "renameat2-noreplace", "/w-rnr", "/w-rnr", "/w-rnr2"),
		r("renameat2-exchange", "renameat2-exchange", "/w-xa", "/w-xa", "/w-xb"),
		r("renameat2-whiteout", "renameat2-whiteout", "/w-wo", "/w-wo", "/w-wo2"),
		r("link", "link", "/l-link", "/w-link", "/l-link"),
		r("symlink", "symlink", "/s-symlink", "somewhere", "/s-symlink"),
		r("mkdir", "mkdir", "/d-mkdir", "/d-mkdir"),
		r("mknod", "mknod", "/p-mknod", "/p-mknod"),
		r("chmod", "chmod", "/w-chmod", "/w-chmod"),
		r("fchmod", "fchmod", "/w-fchmod", "/w-fchmod"),
		r("chown", "chown", "/w-chown", "/w-chown"),
		r("fchown", "fchown", "/w-fchown", "/w-fchown"),
		r("setxattr", "setxattr", "/w-setxattr", "/w-setxattr"),
		r("removexattr", "removexattr", "/w-rmxattr", "/w-rmxattr"),
		// A symlink on the root is the object, wherever it points (here
		// into the allowed volume).
		r("lchown", "lchown", "/l-lchown", "/l-lchown"),
		r("lsetxattr", "lsetxattr", "/l-lsetxattr", "/l-lsetxattr"),
		r("lremovexattr", "lremovexattr", "/l-lrmxattr", "/l-lrmxattr"),
		r("setacl", "setacl", "/w-setacl", "/w-setacl"),
		r("removeacl", "removeacl", "/w-rmacl", "/w-rmacl"),
		r("utimes", "utimes", "/w-utimes", "/w-utimes"),
		r("setflags", "setflags", "/w-setflags", "/w-setflags"),
		r("fssetxattr", "fssetxattr", "/w-fsxattr", "/w-fsxattr"),
		{name: "subvol-create", op: "subvol-create", args: []string{"/d-subvol"}, path: "/d-subvol", letThrough: "ENOTTY"},
		{name: "file-setattr", op: "file-setattr", args: []string{"/w-fileattr"}, path: "/w-fileattr", newSyscall: true},
		r("io-uring-open-write", "io-uring-open-write", "/w-uring", "/w-uring"),
		// allowWrites must not be a way around the rule.
		r("link-into-allowed", "link", "/tmp/l-escape", "/w-escape", "/tmp/l-escape"),
		r("rename-out-of-allowed", "rename", "/w-from-tmp", "/tmp/t-move", "/w-from-tmp"),
	}
}

// allowedRoutes stay writable under the policy of these tests.
var allowedRoutes = [][]string{
	{"harmless-ioctls", "harmless-ioctls", "/r-read"}, // no write, on the root: never judged
	{"allowed-prefix", "create", "/tmp/ok"},
	{"allowed-exact", "create", "/run/app.pid"},
	{"other-filesystem", "create", "/vol/ok"},
}

// makeRoot mounts a tmpfs to serve as a process's root file system, with
// the fixtures of every route, a /tmp and /run, and another tmpfs at /vol.
func makeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=16m,mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(filepath.Join(root, "vol"), unix.MNT_DETACH); unix.Unmount(root, unix.MNT_DETACH) })
	for _, d := range []string{"tmp", "run", "vol", "d-rmdir", "d-unlinkat", "d-subvol"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount("tmpfs", filepath.Join(root, "vol"), "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"w-open", "w-otrunc", "w-trunc", "w-ftrunc", "w-falloc", "w-unlink", "w-rename", "w-rnr", "w-xa", "w-xb", "w-wo",
		"w-link", "w-chmod", "w-fchmod", "w-chown", "w-fchown", "w-setxattr", "w-rmxattr", "w-setacl", "w-rmacl", "w-utimes", "w-setflags", "w-fsxattr", "w-fileattr", "w-escape", "w-uring", "tmp/t-move", "r-read"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("original "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Setxattr(filepath.Join(root, "w-rmxattr"), "trusted.ringfence", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(root, "w-rmacl"), aclXattr, testACL(), 0); err != nil {
		t.Fatalf("set a POSIX ACL on tmpfs (CONFIG_TMPFS_POSIX_ACL): %v", err)
	}
	for _, l := range []string{"l-lchown", "l-lsetxattr", "l-lrmxattr"} {
		if err := os.WriteFile(filepath.Join(root, "vol", l), []byte("volume "+l), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/vol/"+l, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Lsetxattr(filepath.Join(root, "l-lrmxattr"), "trusted.ringfence", []byte("1"), 0); err != nil {
		t.Fatalf("an xattr on a symlink on tmpfs: %v", err)
	}
	return root
}

// rootFS returns the root filesystem mounted at root, as the sensor
// registers a container's.
func rootFS(tb testing.TB, root string) *enforce.RootFS {
	tb.Helper()
	r, err := hostfs.MountAt(root)
	if err != nil {
		tb.Fatal(err)
	}
	return &enforce.RootFS{Dev: r.Dev, Path: r.Root, Host: r.Host}
}

// treeState describes every file below root except the writable places.
func treeState(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "tmp" || rel == "vol" || rel == "run" {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%s mode=%o uid=%d gid=%d size=%d mtime=%d.%d nlink=%d", rel, st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Nlink)
		if d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0 {
			buf := make([]byte, 256)
			n, _ := unix.Llistxattr(p, buf)
			line += " xattrs=" + string(bytes.ReplaceAll(buf[:max(n, 0)], []byte{0}, []byte{','}))
		}
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			line += fmt.Sprintf(" sha=%x", sha256.Sum256(b))
			line += " flags=" + fileFlags(p)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

const readOnlyPolicy = `
apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: ro-MODE}
spec:
  mode: MODE
  readOnlyRootFilesystem:
    allowWrites: ["/tmp/**", "/run/app.pid"]
`

// TestPrivilegedReadOnlyRootFilesystem tries every write route from a process whose
// root is a fresh file system, under a read-only policy in each mode. With
// BPF LSM (the VMs) enforce refuses each with EPERM and leaves the tree as
// it was; audit lets each happen and reports it. Without (this host), both
// modes report audit violations, an enforcing one saying it cannot be
// enforced here.
func TestPrivilegedReadOnlyRootFilesystem(t *testing.T) {
	h := newHarness(t)
	full := testenv.InVM()
	for _, mode := range []string{enforce.ModeEnforce, enforce.ModeAudit} {
		t.Run(mode, func(t *testing.T) {
			pols, problems := enforce.Parse("ro.yaml", []byte(strings.ReplaceAll(readOnlyPolicy, "MODE", mode)))
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			if err := h.s.engine.Load(pols, nil); err != nil {
				t.Fatal(err)
			}
			root := makeRoot(t)
			if _, err := h.s.engine.Apply(enforce.Target{CgroupID: h.cgroupID, Name: "ro-" + mode, Root: rootFS(t, root)}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { h.s.engine.Remove(h.cgroupID) })

			before := treeState(t, root)
			ops := [][]string{{"chroot", "chroot", root}}
			for _, r := range writeRoutes() {
				ops = append(ops, append([]string{r.name, r.op}, r.args...))
			}
			ops = append(ops, allowedRoutes...)
			since := time.Now()
			res := parseResults(runBatchIn(t, h.cgroupFD, batchArgs(ops...)))
			if res["chroot"] != "ok" {
				t.Fatalf("chroot: %s", res["chroot"])
			}
			denied := full && mode == enforce.ModeEnforce
			absent := map[string]bool{}
			for _, r := range writeRoutes() {
				want := cmp.Or(r.letThrough, "ok")
				if denied {
					want = "EPERM"
				}
				if r.newSyscall && res[r.name] == "ENOSYS" {
					t.Logf("%s: not in this kernel (ENOSYS)", r.name)
					absent[r.name] = true
					continue
				}
				if res[r.name] != want {
					t.Errorf("%s: %s, want %s", r.name, res[r.name], want)
				}
			}
			for _, a := range allowedRoutes {
				if res[a[0]] != "ok" {
					t.Errorf("%s (%s): %s, want ok", a[0], a[2], res[a[0]])
				}
			}
			if denied {
				if after := treeState(t, root); after != before {
					t.Errorf("the root file system changed under enforce:\nbefore:\n%s\nafter:\n%s", before, after)
				}
			}

			verdict, reason := event.VerdictAudit, "write to the container's read-only root filesystem"
			if denied {
				verdict = event.VerdictDeny
			}
			if !full && mode == enforce.ModeEnforce {
				reason += ": " + enforce.Unenforceable
			}
			for _, r := range writeRoutes() {
				if r.name == "tmpfile" && !full {
					continue // an unnamed file: the syscall names only its directory
				}
				if r.name == "io-uring-open-write" && !full {
					continue // no syscall of its own: unseen without the LSM hooks (docs/policy.md)
				}
				if absent[r.name] {
					continue
				}
				h.rec.waitFor(t, "violation of "+r.name, func(e *event.Event) bool {
					return e.Kind == event.KindViolation && !e.Time.Before(since) && e.Rule == "readOnlyRootFilesystem" &&
						(e.Path == r.path || e.Target == r.path || r.name == "tmpfile" && strings.HasPrefix(e.Path, r.path)) && e.Verdict == verdict && e.Policy == "ro-"+mode &&
						e.Mode == mode && e.Reason == reason && e.CgroupID == h.cgroupID
				})
			}
			for _, a := range allowedRoutes {
				for _, e := range h.rec.all() {
					if e.Kind == event.KindViolation && !e.Time.Before(since) && e.Path == a[2] {
						t.Errorf("violation for an allowed write: %+v", e)
					}
				}
			}
		})
	}
}
