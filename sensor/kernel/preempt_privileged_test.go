package kernel

import (
	"context"
	"fmt"
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

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/decode"
)

// writeLoop is a shell that opens $1 for writing $2 times and prints how
// many of the opens succeeded: no process is started per write, each
// iteration is one open and one close, so the two loops' hooks interleave
// as tightly as the scheduler allows. Its complaints go to the /dev/null
// the test opens for it: the loop opens nothing else. (true, not ':': a
// failed redirection of a special builtin ends the shell.)
const writeLoop = `n=0; i=0; while [ $i -lt $2 ]; do if true >"$1"; then n=$((n+1)); fi; i=$((i+1)); done; echo $n`

// preemptMode returns how the running kernel preempts, as booted.
func preemptMode() string {
	if b, err := os.ReadFile("/sys/kernel/debug/sched/preempt"); err == nil {
		return strings.TrimSpace(string(b))
	}
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if strings.HasPrefix(f, "preempt=") {
			return f
		}
	}
	return "the kernel's default"
}

// TestPrivilegedWorkingRecordsPreempted: two processes of one container on
// one CPU, one writing where its read-only rule refuses, the other where
// allowWrites lets it, each judged on its own object however the
// scheduler interleaves their hooks. On a kernel that preempts inside a
// hook (the 6.12 VM boots with preempt=full), one task's hook runs in the
// middle of the other's; with one working record per CPU, a refused write
// was judged on the other task's path and let through (27 of 20,000 on the
// 6.12 VM), and either task's events carried the other's path. Each task
// now works in its own record. With the LSM hooks no refused write may
// succeed; on every tier each task's records name its own object.
func TestPrivilegedWorkingRecordsPreempted(t *testing.T) {
	s, root, cgFD := recordRule(t)
	full := s.Tier() == TierFull
	denied := filepath.Join(root, "denied")
	allowed := filepath.Join(root, "tmp", "allowed")
	if err := os.WriteFile(denied, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	ring, err := s.OpenRing()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("preemption: %s", preemptMode())

	const rounds = 20000
	start := func(path string) (*exec.Cmd, *strings.Builder) {
		cmd := exec.Command("/bin/sh", "-c", writeLoop, "sh", path, strconv.Itoa(rounds))
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgFD}
		var out strings.Builder
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out
	}
	// Both on CPU 0: the children inherit the affinity of the thread that
	// forks them.
	runtime.LockOSThread()
	var was unix.CPUSet
	if err := unix.SchedGetaffinity(0, &was); err != nil {
		t.Fatal(err)
	}
	var one unix.CPUSet
	one.Set(0)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	a, aOut := start(denied)
	b, bOut := start(allowed)
	unix.SchedSetaffinity(0, &was)
	runtime.UnlockOSThread()
	aErr, bErr := a.Wait(), b.Wait()
	if aErr != nil || bErr != nil {
		t.Fatalf("writers: %v %v: %s / %s", aErr, bErr, aOut, bOut)
	}
	aPid, bPid := uint32(a.Process.Pid), uint32(b.Process.Pid)
	opened, _ := strconv.Atoi(strings.TrimSpace(aOut.String()))
	openedB, _ := strconv.Atoi(strings.TrimSpace(bOut.String()))
	t.Logf("%d opens each: %d of the refused path succeeded, %d of the allowed one", rounds, opened, openedB)
	if full && opened != 0 {
		t.Errorf("%d of %d writes the read-only rule refuses were let through", opened, rounds)
	}
	if openedB != rounds {
		t.Errorf("%d of %d allowed writes succeeded", openedB, rounds)
	}

	// The records: each task's name its own object. Read until a second
	// passes with nothing new.
	var (
		mu       sync.Mutex
		seen     = map[uint32]int{}
		problems []string
		last     = time.Now()
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dec := decode.New(time.Now(), nil)
	done := make(chan error, 1)
	go func() {
		done <- ring.Run(ctx, func(raw []byte) {
			e, _, err := dec.Decode(raw)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			last = time.Now()
			if e.PID != aPid && e.PID != bPid || e.Kind != "file" && e.Kind != "violation" {
				return
			}
			seen[e.PID]++
			want := allowed
			switch {
			case e.PID == aPid && e.Kind == "violation":
				want = "/denied" // from the container's root
			case e.PID == aPid:
				want = denied
			case e.Kind == "violation":
				want = "no violation"
			}
			if e.Path != want && len(problems) < 10 {
				problems = append(problems, fmt.Sprintf("pid %d (writing %s): %s record of %s", e.PID, map[bool]string{true: denied, false: allowed}[e.PID == aPid], e.Kind, e.Path))
			}
		})
	}()
	for {
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		idle := time.Since(last) > time.Second
		mu.Unlock()
		if idle || ctx.Err() != nil {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	if seen[aPid] == 0 || seen[bPid] == 0 {
		t.Errorf("records seen: %d of the refused path's writer, %d of the allowed one's: want both", seen[aPid], seen[bPid])
	}
	t.Logf("records checked: %d and %d", seen[aPid], seen[bPid])
}
