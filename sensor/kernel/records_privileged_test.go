package kernel

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/bpf"
	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/hostfs"
)

// recordRule loads and commits the tier with a watched test cgroup whose
// container root is a fresh tmpfs under a read-only rule (deny) allowing
// writes below /tmp, and returns the sensor, the root and an open
// descriptor of the cgroup.
func recordRule(t *testing.T) (*Sensor, string, int) {
	t.Helper()
	s, p := loadCommitted(t)
	name := fmt.Sprintf("ringfence-records-%d", os.Getpid())
	cg := testCgroup(t, p, name)
	if err := s.Watch(cg); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=1m,mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
	if err := os.Mkdir(filepath.Join(root, "tmp"), 0o777); err != nil {
		t.Fatal(err)
	}
	r, err := hostfs.MountAt(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutPolicy(1, enforce.KernelPolicy{ReadOnly: true, ReadOnlyAction: enforce.ActionDeny}, []enforce.AllowWrite{{Path: "/tmp/", Prefix: true}}); err != nil {
		t.Fatal(err)
	}
	rfs := enforce.RootFS{Dev: r.Dev, Path: r.Root}
	if err := s.PutRoot(cg, rfs); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMember(cg, enforce.Member{Owner: cg, ReadOnly: true, Policies: []uint32{1}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.DeleteMember(cg); s.DeleteRoot(cg, rfs) })
	f, err := os.Open(filepath.Join(p.Cgroup2Root, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return s, root, int(f.Fd())
}

// writeIn writes to each path from a shell in the cgroup open at cgFD and
// returns, by path, "ok" or the shell's complaint.
func writeIn(t *testing.T, cgFD int, paths ...string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for _, p := range paths {
		cmd := exec.Command("/bin/sh", "-c", `echo x >"$1"`, "sh", p)
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgFD}
		b, err := cmd.CombinedOutput()
		out[p] = "ok"
		if err != nil {
			out[p] = fmt.Sprintf("%v: %s", err, b)
		}
	}
	return out
}

// taskRecords returns every CPU's working records of the process context.
func taskRecords(t *testing.T, s *Sensor) [][]bpf.SensorEnforceScratch {
	t.Helper()
	var out [][]bpf.SensorEnforceScratch
	for i := uint32(bpf.SensorScratchSlotSCRATCH_TASK); i < uint32(bpf.SensorScratchSlotSCRATCH_TASK+bpf.SensorScratchSlotSCRATCH_TASKS); i++ {
		var perCPU []bpf.SensorEnforceScratch
		if err := s.maps.EnforceScratch.Lookup(i, &perCPU); err != nil {
			t.Fatal(err)
		}
		out = append(out, perCPU)
	}
	return out
}

// holdRecords marks every working record of the process context on every
// CPU held (busy 1) or free (0), as hooks preempted in the middle would.
func holdRecords(t *testing.T, s *Sensor, busy uint64) {
	t.Helper()
	for slot, perCPU := range taskRecords(t, s) {
		for cpu := range perCPU {
			perCPU[cpu].Busy = busy
		}
		if err := s.maps.EnforceScratch.Put(uint32(bpf.SensorScratchSlotSCRATCH_TASK)+uint32(slot), perCPU); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPrivilegedWorkingRecordsReleased: every hook that claims a working
// record gives it back, whatever way it returns (a write let through, a
// write refused, an event reported): after a run of writes every record
// of every CPU is free again. One left held would, a few hooks later,
// leave the CPU none.
func TestPrivilegedWorkingRecordsReleased(t *testing.T) {
	s, root, cgFD := recordRule(t)
	other := filepath.Join(t.TempDir(), "other")
	for range 20 {
		writeIn(t, cgFD, filepath.Join(root, "tmp", "allowed"), filepath.Join(root, "denied"), other)
	}
	for slot, perCPU := range taskRecords(t, s) {
		for cpu, r := range perCPU {
			if r.Busy != 0 {
				t.Errorf("record %d of CPU %d still held (busy %d) after the writes", slot, cpu, r.Busy)
			}
		}
	}
}

// TestPrivilegedWorkingRecordsAllHeld: a hook that finds every working
// record of its CPU held (hooks of other tasks preempted in the middle)
// cannot judge or report. With the LSM hooks it refuses a write on a
// device that holds a read-only root, even one its allowWrites would let
// through, and lets other devices' writes through; on every tier it counts
// the lost event (no_working_record). Freed, the same write is judged
// again.
func TestPrivilegedWorkingRecordsAllHeld(t *testing.T) {
	s, root, cgFD := recordRule(t)
	full := s.Tier() == TierFull
	allowed := filepath.Join(root, "tmp", "allowed")
	other := filepath.Join(t.TempDir(), "other")
	drops, err := s.Drops()
	if err != nil {
		t.Fatal(err)
	}
	denials, err := s.ViolationCounts()
	if err != nil {
		t.Fatal(err)
	}

	holdRecords(t, s, 1)
	got := writeIn(t, cgFD, allowed, other)
	holdRecords(t, s, 0)
	if full && got[allowed] == "ok" {
		t.Errorf("a write on a read-only root's device with no record free to judge it: let through, want refused")
	}
	if !full && got[allowed] != "ok" {
		t.Errorf("a write without the LSM hooks: %s, want ok", got[allowed])
	}
	if got[other] != "ok" {
		t.Errorf("a write on a device no read-only root is on, no record free: %s, want ok", got[other])
	}
	after, err := s.Drops()
	if err != nil {
		t.Fatal(err)
	}
	if after["no_working_record"] <= drops["no_working_record"] {
		t.Errorf("no_working_record %d before the writes, %d after: the lost events not counted", drops["no_working_record"], after["no_working_record"])
	}
	if full {
		d, err := s.ViolationCounts()
		if err != nil {
			t.Fatal(err)
		}
		if k := "readOnlyRootFilesystem/deny"; d[k] <= denials[k] {
			t.Errorf("%s %d before, %d after: the refusal not counted", k, denials[k], d[k])
		}
	}

	if got := writeIn(t, cgFD, allowed); got[allowed] != "ok" {
		t.Errorf("the allowed write with the records free again: %s, want ok", got[allowed])
	}
}
