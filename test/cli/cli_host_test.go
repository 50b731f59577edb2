package cli

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/api"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/test/testenv"
)

func TestHostWatchMissingCgroupFails(t *testing.T) {
	testenv.Privileged(t)
	bin := build(t)
	d := t.TempDir()
	out, err := exec.Command(bin, "run", "--watch-cgroup", "ringfence-does-not-exist", "--store", d+"/store", "--api-socket", d+"/api.sock", "--metrics-addr", "").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--watch-cgroup") || !strings.Contains(string(out), "ringfence-does-not-exist") {
		t.Fatalf("want an error naming --watch-cgroup and the path, got %v:\n%s", err, out)
	}
}

// TestHostRunStatusAndStop runs the daemon as the README does, makes a process in
// the watched cgroup exec and write, reads the JSON lines, asks
// `ringfence status`, and stops the daemon with SIGTERM.
func TestHostRunStatusAndStop(t *testing.T) {
	testenv.Privileged(t)
	bin := build(t)
	d := startDaemon(t, bin)
	lines := d.events
	stderr := d.stderr
	daemon := d.cmd
	cg := d.cgroup
	first := <-lines
	if first.Kind != event.KindSensor || !strings.Contains(first.Message, "tier") {
		t.Fatalf("first line is not the start event: %+v", first)
	}

	// The README's example: a write, then a listener (busybox nc) that
	// gives up after a second. The shell execs nc, so one process, the one
	// started here, does all three.
	var st unix.Stat_t
	if err := unix.Stat(cgroupDir(t, cg), &st); err != nil {
		t.Fatal(err)
	}
	cgroupID := st.Ino // a cgroup v2 id is its directory's inode number
	dir := t.TempDir()
	port := freePort(t)
	script := fmt.Sprintf("echo hi > %s/out; exec busybox nc -l -p %d -w 1", dir, port)
	worker := exec.Command("../../scripts/run-in-cgroup.sh", cg, "/bin/sh", "-c", script)
	var workerOut strings.Builder
	worker.Stdout, worker.Stderr = &workerOut, &workerOut
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	pid := uint32(worker.Process.Pid)
	var exec1, file1, bind1 *event.Event
	deadline := time.After(10 * time.Second)
	for exec1 == nil || file1 == nil || bind1 == nil {
		select {
		case e, ok := <-lines:
			if !ok {
				t.Fatalf("daemon stdout closed; stderr:\n%s", stderr.String())
			}
			switch {
			case e.Kind == event.KindExec && e.Binary == "/bin/sh":
				exec1 = &e
			case e.Kind == event.KindFile && e.Path == dir+"/out" && e.Op == "create":
				file1 = &e
			case e.Kind == event.KindBind && e.Port == port:
				bind1 = &e
			}
		case <-deadline:
			t.Fatalf("exec %+v, file %+v, bind %+v; stderr:\n%s", exec1, file1, bind1, stderr.String())
		}
	}
	for _, e := range []*event.Event{exec1, file1, bind1} {
		if e.CgroupID != cgroupID || e.PID != pid {
			t.Errorf("%s event: cgroup_id %d pid %d, want cgroup_id %d (the watched cgroup) pid %d (the worker)", e.Kind, e.CgroupID, e.PID, cgroupID, pid)
		}
	}
	// busybox listens on the IPv6 wildcard, which takes IPv4 too.
	if bind1.Family != "inet6" || bind1.Addr != "::" || bind1.Proto != "tcp" {
		t.Errorf("bind event: %s %s %s, want inet6 :: tcp", bind1.Family, bind1.Addr, bind1.Proto)
	}
	if err := worker.Wait(); err != nil && !strings.Contains(workerOut.String(), "timed out") {
		t.Fatalf("worker: %v\n%s", err, workerOut.String())
	}

	if st, err := os.Stat(d.socket()); err != nil || st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("API socket must be a 0600 unix socket: %v %v", st.Mode(), err)
	}
	out, err := exec.Command(bin, "status", "--api-socket", d.socket()).CombinedOutput()
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, want := range []string{"running", "tier:", "rf_sys_enter", "ring_full_file", "exec/allow", d.store()} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("status lacks %q:\n%s", want, out)
		}
	}

	if err := daemon.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	if err := daemon.Wait(); err != nil {
		t.Fatalf("daemon exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "sensor stopped") {
		t.Fatalf("no clean stop logged:\n%s", stderr.String())
	}
	if _, err := os.Stat(d.socket()); !os.IsNotExist(err) {
		t.Fatalf("API socket left behind: %v", err)
	}

	// The store kept them: the same events come back from a query.
	out, err = exec.Command(bin, "events", "--store", d.store(), "--kind", "file", "-o", "json", "--since", "5m").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"path":"`+dir+`/out"`) {
		t.Fatalf("events query: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "events", "--store", d.store(), "--kind", "bind", "-o", "json", "--since", "5m").CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf(`"port":%d`, port)) {
		t.Fatalf("bind events query: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "events", "--store", d.store(), "--kind", "exec").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "TIME") || !strings.Contains(string(out), "/bin/sh") {
		t.Fatalf("events table: %v\n%s", err, out)
	}
}

// TestHostSecondDaemon: a second daemon on the same pins is refused with an
// error that says why and names --standby; with --standby it waits, touching
// nothing, and takes over when the first one stops.
func TestHostSecondDaemon(t *testing.T) {
	testenv.Privileged(t)
	bin := build(t)
	first := startDaemon(t, bin)
	dir := t.TempDir()
	args := []string{"run", "--watch-cgroup", first.cgroup, "--store", dir + "/store", "--api-socket", dir + "/api.sock",
		"--metrics-addr", "", "--containerd-socket", "", "--bpffs", first.pins, "--stdout=false"}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("a second daemon without --standby did not exit: %s", out)
	}
	if err == nil || !strings.Contains(string(out), "--bpffs") || !strings.Contains(string(out), "in use by another ringfence daemon") || !strings.Contains(string(out), "--standby") {
		t.Fatalf("a second daemon: %v, want an error naming --bpffs, the daemon in charge and --standby:\n%s", err, out)
	}
	if _, err := os.Stat(dir + "/store"); err == nil {
		t.Fatal("the refused daemon made its store")
	}

	health := dir + "/health.sock"
	second := exec.Command(bin, append(args, "--standby", "--health-socket", health)...)
	stderr, err := second.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Process.Signal(syscall.SIGTERM); second.Wait() })
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitLine := func(want string) {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the daemon with --standby ended before it said %q", want)
				}
				if strings.Contains(l, want) {
					return
				}
			case <-timeout:
				t.Fatalf("the daemon with --standby did not say %q in 60 s", want)
			}
		}
	}
	waitLine("standby: another daemon holds the pins")
	if _, err := os.Stat(dir + "/api.sock"); err == nil {
		t.Fatal("the daemon in standby opened its API socket")
	}
	first.statusNow(t) // the first one still answers
	// Its own health socket says standby, whatever the one in charge says.
	if out, err := exec.Command(bin, "health", "--socket", health, "readyz").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "ok: standby") {
		t.Errorf("ringfence health of the daemon in standby: %v %q, want ok: standby", err, out)
	}

	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLine("taking over")
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		snap, err := api.NewClient(dir + "/api.sock").Status(c)
		cancel()
		if err == nil && snap.Ready {
			out, err := exec.Command(bin, "health", "--socket", health, "readyz").CombinedOutput()
			if err != nil || string(out) != "ok\n" {
				t.Errorf("ringfence health of the daemon that took over: %v %q, want ok", err, out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon that took over is not ready after 60 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
