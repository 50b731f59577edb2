package sensor

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/test/testenv"
)

// TestPrivilegedOneEventPerWrite: each write of a process in a container
// is one file event, whatever overlayfs does below the container's root to
// carry it out. Changing a file of the image's lower layer makes overlayfs
// copy it (and its directory) up to the upper layer first, under its own
// credentials but in the writer's task, and then open the real file: xattrs,
// times and opens on the layers, reported before as further events of the
// writer (ten for one open) with the host's snapshot paths. On the full tier
// (the VMs) the hooks see all of that and must report the write alone; on
// the cgroup-only tier the syscall is all there is to see.
func TestPrivilegedOneEventPerWrite(t *testing.T) {
	testenv.Privileged(t)
	h, _ := newContainerHarness(t, "")
	writes := []struct {
		op     string   // the helper's operation
		args   []string // its arguments
		want   string   // the event's operation ("": none)
		path   string   // and path
		result string   // what the call returns ("": ok)
	}{
		{"mkdir", []string{"/root/rf-dir"}, "mkdir", "/root/rf-dir", ""}, // /root copied up first
		{"open-write", []string{"/etc/passwd"}, "open", "/etc/passwd", ""},
		{"utimes", []string{"/etc/group"}, "utimes", "/etc/group", ""},
		{"chmod", []string{"/etc/passwd"}, "chmod", "/etc/passwd", ""},
		{"chown", []string{"/etc/passwd"}, "chown", "/etc/passwd", ""},
		{"setflags", []string{"/etc/hostname"}, "ioctl", "/etc/hostname", ""},  // copied up, then its flags set
		{"harmless-ioctls", []string{"/etc/hosts"}, "", "", ""},                // asks only: no event
		{"pseudo-ioctls", []string{"/etc/hosts"}, "", "", ""},                  // eventfd, nsfs, O_PATH: no event
		{"file-setattr", []string{"/etc/hosts"}, "fileattr", "/etc/hosts", ""}, // 6.17+: copied up, then its flags set, by path
		{"subvol-create", []string{"/etc"}, "ioctl", "/etc", "ENOTTY"},         // not btrfs: judged, then refused by overlayfs
		{"create", []string{"/etc/rf-file"}, "create", "/etc/rf-file", ""},
		{"link", []string{"/etc/passwd", "/etc/rf-link"}, "link", "/etc/rf-link", ""},
		{"symlink", []string{"somewhere", "/etc/rf-sym"}, "symlink", "/etc/rf-sym", ""},
		{"mknod", []string{"/etc/rf-fifo"}, "mknod", "/etc/rf-fifo", ""},
		{"rename", []string{"/etc/group", "/etc/rf-group"}, "rename", "/etc/group", ""},
		{"unlink", []string{"/bin/cat"}, "unlink", "/bin/cat", ""},
		{"rmdir", []string{"/var"}, "rmdir", "/var", ""},
	}
	var ops [][]string
	for i, w := range writes {
		ops = append(ops, append([]string{fmt.Sprint(i), w.op}, w.args...))
	}
	id := h.rt.NewID(t, "one")
	res := parseResults(h.helperRunner(len(ops)).Run(t, id, append([]string{"/rf-helper", "-test.run=^$"}, batchArgs(ops...)...)...))
	// A kernel older than these syscalls answers ENOSYS: no write to report.
	newSyscalls := map[string]bool{"file-setattr": true}
	var want []string
	for i, w := range writes {
		r := res[fmt.Sprint(i)]
		if newSyscalls[w.op] && r == "ENOSYS" {
			t.Logf("%s: not in this kernel (ENOSYS)", w.op)
			continue
		}
		if r != cmp.Or(w.result, "ok") {
			t.Fatalf("%s %v in the container: %s", w.op, w.args, r)
		}
		if w.want != "" {
			want = append(want, w.want+" "+w.path)
		}
	}
	// The helper's exit is reported after everything it did.
	h.rec.waitFor(t, "the helper's exit", func(e *event.Event) bool {
		return e.Kind == event.KindExit && e.Container != nil && e.Container.ID == id && e.Comm == "rf-helper"
	})
	var got []string
	var all strings.Builder
	for _, e := range h.rec.all() {
		if e.Kind != event.KindFile || e.Container == nil || e.Container.ID != id || e.Comm != "rf-helper" {
			continue
		}
		got = append(got, e.Op+" "+e.Path)
		fmt.Fprintf(&all, "\n  %s %q scope=%q target=%q flags=%#x", e.Op, e.Path, e.PathScope, e.Target, e.Flags)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%d events wanted, %d file events got:%s\nwant, in order:\n  %s", len(want), len(got), all.String(), strings.Join(want, "\n  "))
	}
}
