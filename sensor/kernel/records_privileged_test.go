package kernel

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

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
	s, root, cgFD, _ := recordRuleAt(t, "")
	return s, root, cgFD
}

// recordRuleAt is recordRule with the container root at the directory sub
// of the tmpfs ("" its top), as a bind mount or a directory snapshotter
// makes one; it returns the cgroup's id too.
func recordRuleAt(t *testing.T, sub string) (*Sensor, string, int, uint64) {
	t.Helper()
	s, p := loadCommitted(t)
	cg, cgFD := watchedCgroup(t, s, p, fmt.Sprintf("ringfence-records-%d", os.Getpid()))
	top := t.TempDir()
	if err := unix.Mount("tmpfs", top, "tmpfs", 0, "size=1m,mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(top, unix.MNT_DETACH) })
	root := filepath.Join(top, sub)
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o777); err != nil {
		t.Fatal(err)
	}
	r, err := hostfs.MountAt(top)
	if err != nil {
		t.Fatal(err)
	}
	r.Root = filepath.Join(r.Root, sub)
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
	return s, root, cgFD, cg
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

// reportRecords returns every CPU's report records of the process context.
func reportRecords(t *testing.T, s *Sensor) [][]bpf.SensorReportRecord {
	t.Helper()
	var out [][]bpf.SensorReportRecord
	for i := uint32(bpf.SensorScratchSlotSCRATCH_TASK); i < uint32(bpf.SensorScratchSlotSCRATCH_TASK+bpf.SensorScratchSlotSCRATCH_TASKS); i++ {
		var perCPU []bpf.SensorReportRecord
		if err := s.maps.ReportRecords.Lookup(i, &perCPU); err != nil {
			t.Fatal(err)
		}
		out = append(out, perCPU)
	}
	return out
}

// holdRecords marks every report record of the process context on every
// CPU held (busy 1) or free (0), as hooks preempted in the middle would.
func holdRecords(t *testing.T, s *Sensor, busy uint64) {
	t.Helper()
	for slot, perCPU := range reportRecords(t, s) {
		for cpu := range perCPU {
			perCPU[cpu].Busy = busy
		}
		if err := s.maps.ReportRecords.Put(uint32(bpf.SensorScratchSlotSCRATCH_TASK)+uint32(slot), perCPU); err != nil {
			t.Fatal(err)
		}
	}
}

// auditExecs puts the container of cgroup cg under a rule that reports
// every exec (audit): each exec is a violation report of the process
// context.
func auditExecs(t *testing.T, s *Sensor, cg uint64) {
	t.Helper()
	if err := s.PutMember(cg, enforce.Member{Owner: cg, ReadOnly: true, Policies: []uint32{1},
		ExecPolicy: 1, ExecRule: enforce.RuleDenyPrivileged, ExecAction: enforce.ActionAudit}); err != nil {
		t.Fatal(err)
	}
}

// TestPrivilegedReportRecordsReleased: every hook that claims a report
// record gives it back: after a run of reported execs every record of
// every CPU is free again. One left held would, a few hooks later, leave
// the CPU none.
func TestPrivilegedReportRecordsReleased(t *testing.T) {
	s, _, cgFD, cg := recordRuleAt(t, "")
	auditExecs(t, s, cg)
	before, err := s.ViolationCounts()
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		cmd := exec.Command("/bin/sh", "-c", "/bin/true")
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgFD}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	after, err := s.ViolationCounts()
	if err != nil {
		t.Fatal(err)
	}
	if k := "denyPrivileged/audit"; after[k] < before[k]+20 {
		t.Fatalf("%s %d before 20 runs, %d after: the execs were not reported", k, before[k], after[k])
	}
	for slot, perCPU := range reportRecords(t, s) {
		for cpu, r := range perCPU {
			if r.Busy != 0 {
				t.Errorf("record %d of CPU %d still held (busy %d) after the reports", slot, cpu, r.Busy)
			}
		}
	}
}

// TestPrivilegedReportRecordsAllHeld: a hook that finds every report
// record of its CPU held (hooks of other tasks preempted in the middle)
// loses its report and counts it (no_working_record); the violation is
// counted still. File writes, judged in each task's own record, go on as
// ever. Freed, the records serve again.
func TestPrivilegedReportRecordsAllHeld(t *testing.T) {
	s, root, cgFD, cg := recordRuleAt(t, "")
	auditExecs(t, s, cg)
	full := s.Tier() == TierFull
	allowed := filepath.Join(root, "tmp", "allowed")
	denied := filepath.Join(root, "denied")
	drops, err := s.Drops()
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.ViolationCounts()
	if err != nil {
		t.Fatal(err)
	}

	holdRecords(t, s, 1)
	got := writeIn(t, cgFD, allowed, denied)
	holdRecords(t, s, 0)
	if got[allowed] != "ok" {
		t.Errorf("an allowed write with every report record held: %s, want ok", got[allowed])
	}
	if full && !strings.Contains(got[denied], "not permitted") {
		t.Errorf("a forbidden write with every report record held: %s, want refused", got[denied])
	}
	after, err := s.Drops()
	if err != nil {
		t.Fatal(err)
	}
	if after["no_working_record"] <= drops["no_working_record"] {
		t.Errorf("no_working_record %d before, %d after: the exec reports lost and not counted", drops["no_working_record"], after["no_working_record"])
	}
	counts, err := s.ViolationCounts()
	if err != nil {
		t.Fatal(err)
	}
	if k := "denyPrivileged/audit"; counts[k] < before[k]+2 {
		t.Errorf("%s %d before, %d after: the violations not counted", k, before[k], counts[k])
	}
}

// TestPrivilegedTaskRecords: the file hooks and the syscall tracepoint
// build in the writing task's own record, which no other task's hook can
// reach: after a write it holds that task's event.
func TestPrivilegedTaskRecords(t *testing.T) {
	s, root, cgFD := recordRule(t)
	allowed := filepath.Join(root, "tmp", "allowed")
	stay := exec.Command("/bin/sh", "-c", `echo x >"$1" && echo written && exec sleep 30`, "sh", allowed)
	stay.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgFD}
	out, err := stay.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := stay.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stay.Process.Kill(); stay.Wait() })
	line := make([]byte, 8)
	if n, _ := io.ReadFull(out, line); n != len(line) || string(line) != "written\n" {
		t.Fatalf("the writer said %q", line[:n])
	}
	pidfd, err := unix.PidfdOpen(stay.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	var r bpf.SensorEnforceScratch
	if err := s.maps.TaskRecords.Lookup(uint32(pidfd), &r); err != nil {
		t.Fatalf("the writer's own record: %v", err)
	}
	path := unix.ByteSliceToString(unsafe.Slice((*byte)(unsafe.Pointer(&r.Fe.Path[0])), len(r.Fe.Path)))
	if int(r.Fe.Hdr.Pid) != stay.Process.Pid || path != allowed {
		t.Errorf("the writer's record holds pid %d's event on %q, want pid %d's on %q", r.Fe.Hdr.Pid, path, stay.Process.Pid, allowed)
	}
}
