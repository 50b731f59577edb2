package runtime_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/test/runtime"
)

func TestHostRunFlags(t *testing.T) {
	rt := runtime.Start(t)
	hostNet, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		flags []string
		cmd   []string
		want  string
	}{
		{name: "plain", cmd: []string{"echo", "hello"}, want: "hello"},
		{name: "env", flags: []string{"--env", "RF_TEST=bar"}, cmd: []string{"sh", "-c", "echo $RF_TEST"}, want: "bar"},
		{name: "read-only", flags: []string{"--read-only"}, cmd: []string{"sh", "-c", "touch /x 2>/dev/null && echo writable || echo read-only"}, want: "read-only"},
		{name: "writable", cmd: []string{"sh", "-c", "touch /x 2>/dev/null && echo writable || echo read-only"}, want: "writable"},
		{name: "privileged", flags: []string{"--privileged"}, cmd: []string{"sh", "-c", "mount -t tmpfs none /tmp 2>/dev/null && echo mounted || echo denied"}, want: "mounted"},
		{name: "unprivileged", cmd: []string{"sh", "-c", "mount -t tmpfs none /tmp 2>/dev/null && echo mounted || echo denied"}, want: "denied"},
		{name: "net-host", flags: []string{"--net-host"}, cmd: []string{"readlink", "/proc/self/ns/net"}, want: hostNet},
		{name: "cgroup", cmd: []string{"sh", "-c", "grep ^0:: /proc/self/cgroup"}, want: "0::/" + runtime.Namespace + "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := rt.NewID(t, "flags")
			got := strings.TrimSpace(rt.With(tt.flags...).Run(t, id, tt.cmd...))
			if tt.name == "cgroup" {
				// The id is part of the path; only the prefix is fixed.
				tt.want += id
			}
			if got != tt.want {
				t.Errorf("output = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHostRunFailure(t *testing.T) {
	rt := runtime.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := rt.With().Try(ctx, rt.NewID(t, "fail"), "sh", "-c", "exit 3"); err == nil {
		t.Fatal("a container exiting 3 reported no error")
	}
}

func TestHostDetached(t *testing.T) {
	rt := runtime.Start(t)
	id := rt.NewID(t, "detached")
	c := rt.With("--label", "ringfence.test/case=detached").RunDetached(t, id, "sh", "-c", "echo up; exec sleep 60")

	pid := c.Pid(t)
	if pid <= 0 {
		t.Fatalf("pid = %d", pid)
	}
	cg, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "0::/" + runtime.Namespace + "/" + id + "\n"; !strings.Contains(string(cg), want) {
		t.Errorf("/proc/%d/cgroup = %q, want a line %q", pid, cg, want)
	}
	if got := c.Status(t); got != "RUNNING" {
		t.Errorf("status = %q, want RUNNING", got)
	}
	waitFor(t, "output", func() bool { return strings.Contains(c.Output(t), "up") })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	info, err := rt.Ctr(ctx, c.Namespace, "containers", "info", id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, `"ringfence.test/case": "detached"`) {
		t.Errorf("container info lacks the label:\n%s", info)
	}

	c.Kill(t)
	if got := c.Status(t); got != "STOPPED" {
		t.Errorf("status after Kill = %q, want STOPPED", got)
	}
	c.Remove(t)
	c.Remove(t)
	if got := c.Status(t); got != "" {
		t.Errorf("status after Remove = %q, want no task", got)
	}
	if _, err := os.Stat(filepath.Join(cgroup2(t), runtime.Namespace, id)); !os.IsNotExist(err) {
		t.Errorf("the container's cgroup outlived it: %v", err)
	}
}

func TestHostNamespaces(t *testing.T) {
	rt := runtime.StartWith(t, runtime.Config{Namespaces: []string{runtime.Namespace, "rf-other"}})
	id := rt.NewID(t, "ns")
	got := strings.TrimSpace(rt.In("rf-other").Run(t, id, "sh", "-c", "grep ^0:: /proc/self/cgroup"))
	if want := "0::/rf-other/" + id; got != want {
		t.Errorf("cgroup = %q, want %q", got, want)
	}
}

func TestHostDownUp(t *testing.T) {
	rt := runtime.Start(t)
	c := rt.RunDetached(t, rt.NewID(t, "down"), "sleep", "60")
	pid := c.Pid(t)

	rt.Down(t)
	rt.Down(t)
	if rt.Running() {
		t.Fatal("Running after Down")
	}
	for _, p := range []string{rt.Socket, rt.Root, filepath.Join("/proc", strconv.Itoa(pid))} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s outlived Down: %v", p, err)
		}
	}
	if shims := shimsFor(t, rt.Socket); len(shims) > 0 {
		t.Errorf("shims outlived Down: %v", shims)
	}

	rt.Up(t)
	rt.Up(t)
	if !rt.Running() {
		t.Fatal("not Running after Up")
	}
	if got := strings.TrimSpace(rt.Run(t, rt.NewID(t, "up"), "echo", "again")); got != "again" {
		t.Errorf("output = %q, want again", got)
	}
}
