package kernel

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ringfence/ringfence/bpf"
	"github.com/ringfence/ringfence/sensor/decode"
)

// TestPrivilegedFileRecords: the kernel writes a file record only up to the
// end of its last path and that path's NUL, on whichever tier the probe
// chose (the syscall tracepoint or the LSM hooks), and the records decode
// to the paths the process wrote.
func TestPrivilegedFileRecords(t *testing.T) {
	s, p := loadCommitted(t)
	cg := fmt.Sprintf("ringfence-records-test-%d", os.Getpid())
	id := testCgroup(t, p, cg)
	if err := s.Watch(id); err != nil {
		t.Fatal(err)
	}
	ring, err := s.OpenRing()
	if err != nil {
		t.Fatal(err)
	}

	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "a")
	long := filepath.Join(dir, strings.Repeat("l", 200))
	cgFD, err := os.Open(filepath.Join(p.Cgroup2Root, cg))
	if err != nil {
		t.Fatal(err)
	}
	defer cgFD.Close()
	cmd := exec.Command("/bin/sh", "-c", `echo x >"$1" && mv "$1" "$2"`, "sh", short, long)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgFD.Fd())}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("writer: %v: %s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	full := int(unsafe.Sizeof(bpf.SensorFileEvent{}))
	pathOff := int(unsafe.Offsetof(bpf.SensorFileEvent{}.Path))
	path2Off := int(unsafe.Offsetof(bpf.SensorFileEvent{}.Path2))
	dec := decode.New(time.Now(), nil)
	var created, renamed bool
	var problems []string
	runErr := make(chan error, 1)
	go func() {
		runErr <- ring.Run(ctx, func(raw []byte) {
			e, _, err := dec.Decode(raw)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%d-byte record: %v", len(raw), err))
				return
			}
			if e.CgroupID != id || e.Kind != "file" {
				return
			}
			want := pathOff + len(e.Path) + 1
			if e.Target != "" {
				want = path2Off + len(e.Target) + 1
			}
			if len(raw) != want || len(raw) >= full {
				problems = append(problems, fmt.Sprintf("%s %s -> %s: %d bytes, want %d (the whole struct is %d)", e.Op, e.Path, e.Target, len(raw), want, full))
			}
			switch {
			case e.Path == short && (e.Op == "create" || e.Op == "open" || e.Op == "truncate"):
				created = true
			case e.Op == "rename" && e.Path == short && e.Target == long:
				renamed = true
			}
			if created && renamed {
				cancel()
			}
		})
	}()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	if !created || !renamed {
		t.Fatalf("records seen: create of %s %v, rename to %s %v", short, created, long, renamed)
	}
}
