package sensor

import (
	"cmp"
	"fmt"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/decode"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/test/testenv"
)

const readOnlyContainerPolicies = `
apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: ro-enforce}
spec:
  mode: enforce
  selector: {names: ["roe-*"]}
  readOnlyRootFilesystem: {allowWrites: ["/tmp/**"]}
---
apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: ro-audit}
spec:
  mode: audit
  selector: {names: ["roa-*"]}
  readOnlyRootFilesystem: {allowWrites: ["/tmp/**"]}
`

// containerWriteRoutes changes the test image's own files (an overlayfs
// root), in an order that lets each succeed where writes are allowed.
// (overlayfs refuses RENAME_WHITEOUT from processes: that route is tried
// on a tmpfs root in TestPrivilegedReadOnlyRootFilesystem.)
var containerWriteRoutes = []writeRoute{
	{"open-write", "open-write", []string{"/etc/passwd"}, "/etc/passwd", "", false},
	{"open-trunc", "open-trunc", []string{"/etc/group"}, "/etc/group", "", false},
	{"truncate", "truncate", []string{"/etc/passwd"}, "/etc/passwd", "", false},
	{"ftruncate", "ftruncate", []string{"/etc/group"}, "/etc/group", "", false},
	{"fallocate", "fallocate", []string{"/etc/passwd"}, "/etc/passwd", "", false},
	{"chmod", "chmod", []string{"/etc/passwd"}, "/etc/passwd", "", false},
	{"fchmod", "fchmod", []string{"/etc/group"}, "/etc/group", "", false},
	{"chown", "chown", []string{"/etc/passwd"}, "/etc/passwd", "", false},
	{"fchown", "fchown", []string{"/etc/group"}, "/etc/group", "", false},
	{"utimes", "utimes", []string{"/etc/passwd"}, "/etc/passwd", "", false},
	{"setflags", "setflags", []string{"/etc/passwd"}, "/etc/passwd", "", false},
	{"fssetxattr", "fssetxattr", []string{"/etc/group"}, "/etc/group", "", false},
	{"link", "link", []string{"/etc/passwd", "/etc/passwd-link"}, "/etc/passwd-link", "", false},
	{"create", "create", []string{"/etc/new-file"}, "/etc/new-file", "", false},
	{"tmpfile", "tmpfile", []string{"/etc"}, "/etc/#", "", false},
	{"mkdir", "mkdir", []string{"/etc/new-dir"}, "/etc/new-dir", "", false},
	{"mknod", "mknod", []string{"/etc/fifo"}, "/etc/fifo", "", false},
	{"symlink", "symlink", []string{"somewhere", "/etc/sym"}, "/etc/sym", "", false},
	{"rmdir", "rmdir", []string{"/var"}, "/var", "", false},
	{"unlinkat-removedir", "unlinkat-removedir", []string{"/root"}, "/root", "", false},
	{"rename", "rename", []string{"/etc/group", "/etc/group2"}, "/etc/group", "", false},
	{"renameat2-noreplace", "renameat2-noreplace", []string{"/bin/ls", "/bin/ls2"}, "/bin/ls", "", false},
	{"renameat2-exchange", "renameat2-exchange", []string{"/bin/cp", "/bin/mv"}, "/bin/cp", "", false},
	{"unlink", "unlink", []string{"/bin/cat"}, "/bin/cat", "", false},
	{"subvol-create", "subvol-create", []string{"/etc"}, "/etc", "ENOTTY", false},
}

// TestPrivilegedReadOnlyContainer runs every write route in a container started by
// containerd and runc, on its overlayfs root, under an enforcing and an
// auditing read-only policy. With BPF LSM (the VMs) each is refused with
// EPERM and the root's trees hash the same before and after; /tmp stays
// writable; in audit mode each happens and is reported. On this host the
// enforcing policy can only report, and says so.
func TestPrivilegedReadOnlyContainer(t *testing.T) {
	testenv.Privileged(t)
	h, _ := newContainerHarness(t, readOnlyContainerPolicies)
	full := testenv.InVM()
	trees := []string{"before", "digest", "before", "/etc", "/bin", "/var", "/root"}
	for _, c := range []struct{ prefix, policy, mode string }{{"roe", "ro-enforce", enforce.ModeEnforce}, {"roa", "ro-audit", enforce.ModeAudit}} {
		t.Run(c.mode, func(t *testing.T) {
			ops := [][]string{trees}
			for _, r := range containerWriteRoutes {
				ops = append(ops, append([]string{r.name, r.op}, r.args...))
			}
			ops = append(ops, []string{"allowed", "create", "/tmp/ok"}, append([]string{"after", "digest", "after"}, trees[3:]...))
			id := h.rt.NewID(t, c.prefix)
			out := h.helperRunner(len(ops)).Run(t, id, append([]string{"/rf-helper", "-test.run=^$"}, batchArgs(ops...)...)...)
			res := parseResults(out)
			denied := full && c.mode == enforce.ModeEnforce
			unsupported := map[string]bool{}
			for _, r := range containerWriteRoutes {
				want := cmp.Or(r.letThrough, "ok")
				if denied {
					want = "EPERM"
				}
				if r.name == "tmpfile" && res[r.name] == "ENOTSUP" {
					// overlayfs has O_TMPFILE from 6.6 on; the route is
					// tried on a tmpfs root in TestPrivilegedReadOnlyRootFilesystem.
					t.Logf("%s: not supported by this kernel's overlayfs", r.name)
					unsupported[r.name] = true
					continue
				}
				if res[r.name] != want {
					t.Errorf("%s %v: %s, want %s", r.name, r.args, res[r.name], want)
				}
			}
			if res["allowed"] != "ok" {
				t.Errorf("a write to /tmp (allowWrites): %s", res["allowed"])
			}
			digests := map[string]string{}
			for _, line := range strings.Split(out, "\n") {
				if f := strings.Fields(line); len(f) == 3 && f[0] == "DIGEST" {
					digests[f[1]] = f[2]
				}
			}
			if digests["before"] == "" || digests["after"] == "" {
				t.Fatalf("no digests in %q", out)
			}
			if changed := digests["before"] != digests["after"]; changed == denied {
				t.Errorf("root file system changed: %v, want %v:%s", changed, !denied, treeDiff(out))
			}

			verdict, reason := event.VerdictAudit, "write to the container's read-only root filesystem"
			if denied {
				verdict = event.VerdictDeny
			}
			if !full && c.mode == enforce.ModeEnforce {
				reason += ": " + enforce.Unenforceable
			}
			for _, r := range containerWriteRoutes {
				if r.name == "tmpfile" && !full || unsupported[r.name] {
					continue // an unnamed file: the syscall names only its directory
				}
				h.rec.waitFor(t, "violation of "+r.name, func(e *event.Event) bool {
					return e.Kind == event.KindViolation && e.Container != nil && e.Container.ID == id &&
						e.Rule == "readOnlyRootFilesystem" && e.Verdict == verdict && e.Policy == c.policy && e.Reason == reason &&
						(e.Path == r.path || e.Target == r.path || r.name == "tmpfile" && strings.HasPrefix(e.Path, r.path))
				})
			}
			for _, e := range h.violationsOf(id) {
				if strings.HasPrefix(e.Path, "/tmp/") {
					t.Errorf("violation for a write to /tmp: %+v", e)
				}
			}
		})
	}
}

// treeDiff lists the TREE lines of a batch's output that differ between
// its "before" and "after" digests.
func treeDiff(out string) string {
	trees := map[string]map[string]bool{"before": {}, "after": {}}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.SplitN(line, " ", 3); len(f) == 3 && f[0] == "TREE" && trees[f[1]] != nil {
			trees[f[1]][f[2]] = true
		}
	}
	var b strings.Builder
	for side, other := range map[string]string{"before": "after", "after": "before"} {
		for e := range trees[side] {
			if !trees[other][e] {
				b.WriteString("\n  only " + side + ": " + e)
			}
		}
	}
	return b.String()
}

// TestPrivilegedReadOnlyBypasses tries the routes by which a process could
// make the rule judge its own view instead of the file it writes, against a
// container under an enforcing read-only policy: a chroot elsewhere and a
// descriptor of the old root; a bind mount of a read-only directory under
// an allowed one, in a user and mount namespace of its own; and another
// container, unselected, writing the first one's root through
// /proc/<pid>/root in a shared PID namespace. With BPF LSM (the VMs) each
// is refused and the files stay as they were: the rule judges the object.
// On this host the first is reported (the syscall's path is resolved from
// the descriptor, not the process's root); the others are known limits of
// judging paths at the syscall (docs/policy.md).
func TestPrivilegedReadOnlyBypasses(t *testing.T) {
	testenv.Privileged(t)
	h, _ := newContainerHarness(t, readOnlyContainerPolicies)
	full := testenv.InVM()
	want := "ok"
	if full {
		want = "EPERM"
	}
	trees := []string{"digest", "before", "/etc"}
	ops := [][]string{
		append([]string{"before"}, trees...),
		{"chroot-escape", "chroot-escape", "/dev", "etc/passwd"},
		{"userns-bind", "userns-bind", "/etc", "/tmp/bound", "group"},
		{"after", "digest", "after", "/etc"},
	}
	id := h.rt.NewID(t, "roe")
	out := h.helperRunner(len(ops)).Run(t, id, append([]string{"/rf-helper", "-test.run=^$"}, batchArgs(ops...)...)...)
	res := parseResults(out)
	for _, r := range []string{"chroot-escape", "userns-bind"} {
		if res[r] != want {
			t.Errorf("%s: %s, want %s", r, res[r], want)
		}
	}
	before, after := digestOf(out, "before"), digestOf(out, "after")
	if before == "" || after == "" {
		t.Fatalf("no digests in %q", out)
	}
	if full && before != after {
		t.Errorf("the root file system changed under enforce:%s", treeDiff(out))
	}
	verdict := event.VerdictAudit
	if full {
		verdict = event.VerdictDeny
	}
	wantViolation := func(what, path string) {
		h.rec.waitFor(t, "violation of "+what, func(e *event.Event) bool {
			return e.Kind == event.KindViolation && e.Container != nil && e.Container.ID == id &&
				e.Rule == "readOnlyRootFilesystem" && e.Verdict == verdict && e.Policy == "ro-enforce" && e.Path == path
		})
	}
	wantViolation("a write through a descriptor of the old root", "/etc/passwd")
	if full {
		wantViolation("a write through a bind mount in a user namespace", "/etc/group")
	}

	t.Run("another container's root", func(t *testing.T) {
		victim := h.rt.NewID(t, "roe")
		c := h.rt.RunDetached(t, victim, "sleep", "60")
		pid := c.Pid(t)
		attacker := h.rt.NewID(t, "free")
		ops := [][]string{{"cross", "append", "/proc/1/root/etc/passwd"}}
		out := h.helperRunner(len(ops), "--with-ns", fmt.Sprintf("pid:/proc/%d/ns/pid", pid)).
			Run(t, attacker, append([]string{"/rf-helper", "-test.run=^$"}, batchArgs(ops...)...)...)
		if got := parseResults(out)["cross"]; got != want {
			t.Fatalf("writing another container's root through /proc/1/root: %s, want %s", got, want)
		}
		if !full {
			return
		}
		h.rec.waitFor(t, "violation of a write to another container's root", func(e *event.Event) bool {
			return e.Kind == event.KindViolation && e.Container != nil && e.Container.ID == attacker &&
				e.ObjectContainer != nil && e.ObjectContainer.ID == victim && e.Rule == "readOnlyRootFilesystem" &&
				e.Verdict == event.VerdictDeny && e.Policy == "ro-enforce" && e.Path == "/etc/passwd"
		})
	})
}

// digestOf returns the digest a batch printed under name.
func digestOf(out, name string) string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "DIGEST" && f[1] == name {
			return f[2]
		}
	}
	return ""
}

// TestPrivilegedReadOnlyCutPath writes /etc/passwd in a container under an
// enforcing read-only policy through a path longer than the kernel reads
// whole: /tmp/d, 300 "./", then "../../etc/passwd". Its first bytes alone
// name /tmp/d, which allowWrites holds. With BPF LSM (the VMs) the object
// is judged and the write refused; on this host the syscall's path is cut
// short, marked so, and judged as one no allowWrites entry holds: reported,
// never passed as a write to /tmp.
func TestPrivilegedReadOnlyCutPath(t *testing.T) {
	testenv.Privileged(t)
	h, _ := newContainerHarness(t, readOnlyContainerPolicies)
	full := testenv.InVM()
	long := "/tmp/d/" + strings.Repeat("./", 300) + "../../etc/passwd"
	ops := [][]string{
		{"dir", "mkdir", "/tmp/d"},
		{"cut", "append", long},
	}
	id := h.rt.NewID(t, "roe")
	res := parseResults(h.helperRunner(len(ops)).Run(t, id, append([]string{"/rf-helper", "-test.run=^$"}, batchArgs(ops...)...)...))
	want := "ok"
	if full {
		want = "EPERM"
	}
	if res["dir"] != "ok" || res["cut"] != want {
		t.Fatalf("mkdir /tmp/d: %s; the write through a %d-byte path: %s, want %s", res["dir"], len(long), res["cut"], want)
	}
	h.rec.waitFor(t, "violation of the write through a cut path", func(e *event.Event) bool {
		if e.Kind != event.KindViolation || e.Container == nil || e.Container.ID != id || e.Rule != "readOnlyRootFilesystem" || e.Policy != "ro-enforce" {
			return false
		}
		if full {
			return e.Verdict == event.VerdictDeny && e.Path == "/etc/passwd" && e.PathScope == ""
		}
		return e.Verdict == event.VerdictAudit && e.PathScope == decode.ScopeTruncated && strings.Contains(e.Reason, "not known whole")
	})
	for _, e := range h.violationsOf(id) {
		if e.Path == "/tmp/d" {
			t.Errorf("the write judged as one to /tmp/d: %+v", e)
		}
	}
}
