// Package cli tests the built ringfence binary from the outside, as an
// operator uses it.
package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/test/testenv"
)

func build(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "ringfence")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/ringfence/ringfence/cmd/ringfence").CombinedOutput()
	if err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestUsageErrors(t *testing.T) {
	bin := build(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage: ringfence"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"bad ring size", []string{"run", "--ring-mib", "3"}, "--ring-mib: 3 is not a power of two"},
		{"stray argument", []string{"run", "extra"}, `unexpected argument "extra"`},
		{"bad output", []string{"status", "-o", "yaml"}, `-o: "yaml" is not table or json`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := exec.Command(bin, c.args...).CombinedOutput()
			if err == nil {
				t.Fatalf("exit 0, want a usage error; output:\n%s", out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Fatalf("output does not say %q:\n%s", c.want, out)
			}
		})
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "ringfence ") {
		t.Fatalf("version: %q, %v", out, err)
	}
}

func TestWatchMissingCgroupFails(t *testing.T) {
	testenv.Privileged(t)
	bin := build(t)
	out, err := exec.Command(bin, "run", "--watch-cgroup", "ringfence-does-not-exist", "--status-file", filepath.Join(t.TempDir(), "s.json")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--watch-cgroup") || !strings.Contains(string(out), "ringfence-does-not-exist") {
		t.Fatalf("want an error naming --watch-cgroup and the path, got %v:\n%s", err, out)
	}
}

// TestRunStatusAndStop runs the daemon as the README does, makes a process in
// the watched cgroup exec and write, reads the JSON lines, asks
// `ringfence status`, and stops the daemon with SIGTERM.
func TestRunStatusAndStop(t *testing.T) {
	testenv.Privileged(t)
	bin := build(t)
	cg := fmt.Sprintf("ringfence-cli-test-%d", os.Getpid())
	statusFile := filepath.Join(t.TempDir(), "status.json")
	daemon := exec.Command(bin, "run", "--watch-cgroup", cg, "--create-cgroup", "--status-file", statusFile, "--interval", "200ms")
	stdout, err := daemon.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	daemon.Stderr = &stderr
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { daemon.Process.Kill(); daemon.Wait() })
	lines := make(chan event.Event, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e event.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Errorf("not a JSON line: %q: %v", sc.Text(), err)
				continue
			}
			lines <- e
		}
		close(lines)
	}()
	first := <-lines
	if first.Kind != event.KindSensor || !strings.Contains(first.Message, "tier") {
		t.Fatalf("first line is not the start event: %+v", first)
	}
	if !testenv.InVM() && !strings.Contains(first.Message, "cgroup-only") {
		t.Fatalf("host tier: %s", first.Message)
	}

	dir := t.TempDir()
	script := fmt.Sprintf("echo hi > %s/out", dir)
	worker := exec.Command("../../scripts/run-in-cgroup.sh", cg, "/bin/sh", "-c", script)
	if out, err := worker.CombinedOutput(); err != nil {
		t.Fatalf("worker: %v\n%s", err, out)
	}
	var sawExec, sawFile bool
	deadline := time.After(10 * time.Second)
	for !(sawExec && sawFile) {
		select {
		case e, ok := <-lines:
			if !ok {
				t.Fatalf("daemon stdout closed; stderr:\n%s", stderr.String())
			}
			switch {
			case e.Kind == event.KindExec && e.Binary == "/bin/sh":
				sawExec = e.CgroupID != 0 && e.PID != 0
			case e.Kind == event.KindFile && e.Path == dir+"/out" && e.Op == "create":
				sawFile = e.CgroupID != 0
			}
		case <-deadline:
			t.Fatalf("exec seen %v, file seen %v; stderr:\n%s", sawExec, sawFile, stderr.String())
		}
	}

	// The status file appears at the first poll.
	var out []byte
	for i := 0; i < 50; i++ {
		if out, err = exec.Command(bin, "status", "--status-file", statusFile).CombinedOutput(); err == nil && strings.Contains(string(out), "daemon:       running") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{"running", "tier:", "rf_sys_enter", "ring_full_file", "exec/allow"} {
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
}
