package kernel

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/hostfs"
)

// TestPrivilegedRuntimeReexecNotHeld: in a pending container cgroup the
// kernel holds every exec but the runtime's re-exec of itself as
// "<argv0> init" from one of its binaries (runtime_exes) or a memfd, so a
// container's setup completes while no daemon runs; the same file with
// other arguments, or another file with "init", is held.
func TestPrivilegedRuntimeReexecNotHeld(t *testing.T) {
	s, p := loadCommitted(t)
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	image, err := os.ReadFile(truePath)
	if err != nil {
		t.Fatal(err)
	}
	// The "runtime": a copy of true, a file of its own.
	rt := filepath.Join(t.TempDir(), "runtime")
	if err := os.WriteFile(rt, image, 0o755); err != nil {
		t.Fatal(err)
	}
	dev, ino, err := hostfs.FileID(rt)
	if err != nil {
		t.Fatal(err)
	}
	// Replacing the set drops what it had.
	if err := s.SetRuntimeExes([]FileID{{Dev: 1, Ino: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRuntimeExes([]FileID{{Dev: dev, Ino: ino}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.RuntimeExes(); err != nil || !slices.Equal(got, []FileID{{Dev: dev, Ino: ino}}) {
		t.Fatalf("runtime binaries %v (%v), want only %d:%d", got, err, dev, ino)
	}
	if err := s.SetRuntimeExes(make([]FileID, 17)); err == nil {
		t.Fatal("17 runtime binaries accepted: the map holds 16")
	}
	memfd, err := unix.MemfdCreate("ringfence-runtime-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(memfd)
	if _, err := unix.Write(memfd, image); err != nil {
		t.Fatal(err)
	}
	// The child opens the parent's descriptor: the exec is of the memfd.
	memfdPath := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), memfd)

	parent := fmt.Sprintf("ringfence-runtime-test-%d", os.Getpid())
	parentID := testCgroup(t, p, parent)
	if err := s.AddRuntimeParent(parentID); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		path string
		args []string
		held bool
	}{
		{rt, []string{"runc", "init"}, false},
		{memfdPath, []string{"runc", "init"}, false},
		{rt, []string{"runc", "run"}, true},
		{rt, []string{"runc", "initx"}, true},
		{rt, []string{"init"}, true},
		{truePath, []string{"runc", "init"}, true},
	} {
		dir := fmt.Sprintf("%s/c%d", parent, i)
		if err := hostfs.CreateCgroup(p.Cgroup2Root, dir); err != nil {
			t.Fatal(err)
		}
		cgDir := filepath.Join(p.Cgroup2Root, dir)
		t.Cleanup(func() { os.Remove(cgDir) })
		id, _ := hostfs.CgroupID(p.Cgroup2Root, dir)
		if pending, _ := s.Pending(); !slices.Contains(pending, id) {
			t.Fatalf("%s is not pending below a runtime parent", dir)
		}
		fd, err := unix.Open(cgDir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		cmd := &exec.Cmd{Path: c.path, Args: c.args, SysProcAttr: &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}}
		err = cmd.Start()
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		pid := uint32(cmd.Process.Pid)
		stopped := false
	wait:
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			select {
			case err := <-exited:
				// It ran: its exit status is the copied program's (a
				// multi-call binary may not know "runc").
				var exit *exec.ExitError
				if err != nil && !errors.As(err, &exit) {
					t.Errorf("%s %v: %v", c.path, c.args, err)
				}
				break wait
			default:
			}
			if stopped = hostfs.Stopped("/proc", pid); stopped || time.Now().After(deadline) {
				cmd.Process.Kill()
				<-exited
				break
			}
		}
		if stopped != c.held {
			t.Errorf("%s %v in a pending cgroup: held %v, want %v", c.path, c.args, stopped, c.held)
		}
	}
}
