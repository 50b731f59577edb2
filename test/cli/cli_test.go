// Package cli tests the built ringfence binary from the outside, as an
// operator uses it.
package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/api"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/hostfs"
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
		{"bad metrics addr", []string{"run", "--metrics-addr", "9464"}, "--metrics-addr"},
		{"events bad since", []string{"events", "--since", "yesterday"}, `--since: "yesterday" is neither a duration`},
		{"events bad kind", []string{"events", "--kind", "exec,frob"}, `--kind: unknown kind "frob"`},
		{"events bad verdict", []string{"events", "--verdict", "maybe"}, `--verdict: unknown verdict "maybe"`},
		{"events window backwards", []string{"events", "--since", "1m", "--until", "2h"}, "is not before --until"},
		{"events missing store", []string{"events", "--store", "/nonexistent/rf"}, "--store"},
		{"policy without files", []string{"policy", "check"}, "give at least one FILE"},
		{"policy broken", []string{"policy", "check", "../../enforce/testdata/broken.yaml"}, "../../enforce/testdata/broken.yaml:14: spec.bindInterfaces.ports[1]: \"9100-9000\": the range ends before it starts"},
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
	if out, err := exec.Command(bin, "policy", "check", "../../enforce/testdata/web.yaml").CombinedOutput(); err != nil || !strings.Contains(string(out), "web: valid (enforce)") {
		t.Fatalf("policy check of a valid file: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "ringfence ") {
		t.Fatalf("version: %q, %v", out, err)
	}
}

// daemon is a running `ringfence run` with its own store, socket and cgroup.
type daemon struct {
	cmd    *exec.Cmd
	dir    string
	cgroup string
	pins   string // its --bpffs
	stderr *strings.Builder
	events chan event.Event
}

func (d *daemon) store() string  { return filepath.Join(d.dir, "store") }
func (d *daemon) socket() string { return filepath.Join(d.dir, "api.sock") }

// startDaemon runs the daemon and waits for its start event on stdout.
func startDaemon(tb testing.TB, bin string, extra ...string) *daemon {
	tb.Helper()
	d := &daemon{dir: tb.TempDir(), cgroup: fmt.Sprintf("ringfence-cli-test-%d-%d", os.Getpid(), time.Now().UnixNano()), stderr: &strings.Builder{}, events: make(chan event.Event, 1<<16)}
	// Pinned state of its own, removed when the test ends: no other
	// daemon adopts it.
	d.pins = "/sys/fs/bpf/" + d.cgroup
	args := append([]string{"run", "--watch-cgroup", d.cgroup, "--create-cgroup", "--store", d.store(), "--api-socket", d.socket(), "--metrics-addr", "", "--interval", "200ms", "--containerd-socket", "", "--bpffs", d.pins}, extra...)
	d.cmd = exec.Command(bin, args...)
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// SIGTERM first: a daemon killed while it holds a new container's
		// first exec would leave that process stopped (containers of other
		// containerds on this host share the namespace's parent cgroup).
		d.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			d.cmd.Process.Kill()
			<-done
		}
		if out, err := exec.Command(bin, "uninstall", "--bpffs", d.pins).CombinedOutput(); err != nil && !errors.Is(err, os.ErrNotExist) {
			tb.Errorf("uninstall: %v\n%s", err, out)
		}
		os.Remove(cgroupDir(tb, d.cgroup))
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e event.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				tb.Errorf("not a JSON line: %q: %v", sc.Text(), err)
				continue
			}
			select {
			case d.events <- e:
			default: // the test reads only what it needs
			}
		}
		close(d.events)
	}()
	// Ready is when the programs are attached and the ring is read.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		snap, err := api.NewClient(d.socket()).Status(ctx)
		cancel()
		if err == nil && snap.Ready {
			if !testenv.InVM() && snap.Tier != "cgroup-only" {
				tb.Fatalf("host tier: %s: %s", snap.Tier, snap.TierReason)
			}
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("daemon not ready after 30 s (%v); stderr:\n%s", err, d.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

// freePort returns a TCP port nothing listens on now.
func freePort(tb testing.TB) uint16 {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func cgroupDir(tb testing.TB, name string) string {
	tb.Helper()
	root, err := hostfs.Cgroup2Root()
	if err != nil {
		tb.Fatal(err)
	}
	return filepath.Join(root, name)
}

// inCgroup runs this test binary as a generator inside the daemon's cgroup.
func (d *daemon) inCgroup(tb testing.TB, gen string, args ...string) *exec.Cmd {
	tb.Helper()
	fd, err := os.Open(cgroupDir(tb, d.cgroup))
	if err != nil {
		tb.Fatal(err)
	}
	defer fd.Close()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), genEnv+"="+gen)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fd.Fd())}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	return cmd
}
