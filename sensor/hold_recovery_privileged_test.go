package sensor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/hold"
	"github.com/ringfence/ringfence/sensor/hostfs"
	"github.com/ringfence/ringfence/test/runtime"
	"github.com/ringfence/ringfence/test/testenv"
)

// TestPrivilegedParentMadeLater configures a runtime parent two levels of which do
// not exist when the sensor starts, as a containerd namespace before its
// first container: the kernel marks it the moment it is made, so the first
// container below it is held too, with no poll in between.
func TestPrivilegedParentMadeLater(t *testing.T) {
	testenv.Privileged(t)
	root, top := runtimeParent(t, "later")
	parent := top + "/ns/slice"
	cache := container.NewCache(container.CacheConfig{})
	h := newHarnessWith(t, Config{Containers: cache, RuntimeParents: []string{parent}, HoldTimeout: 5 * time.Second})
	// The harness polls every 200 ms: a poll that registered the parent by
	// id would take until then; this makes and uses it at once.
	if err := os.MkdirAll(filepath.Join(root, parent), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Remove(filepath.Join(root, parent))
		os.Remove(filepath.Join(root, top, "ns"))
	})
	dir, id, started := startHeld(t, root, parent, "first")
	pid := waitStoppedIn(t, dir)
	h.named(cache, container.Info{ID: "ctr-first", Name: "first", Image: "test/image", CgroupID: id})
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("held process never released")
	}
	e := h.rec.waitFor(t, "held exec", func(e *event.Event) bool { return e.Kind == event.KindExec && e.PID == uint32(pid) })
	if e.HoldOutcome != "released" || e.Container == nil || e.Container.ID != "ctr-first" {
		t.Fatalf("first container below a parent made after start: outcome %q, container %+v", e.HoldOutcome, e.Container)
	}
}

// TestPrivilegedCgroupInsideContainer makes a cgroup inside a classified container,
// as systemd or a nested runtime in it would: it is watched at once, is not
// a new container (nothing in it is held), and its events name the
// container.
func TestPrivilegedCgroupInsideContainer(t *testing.T) {
	testenv.Privileged(t)
	root, parent := runtimeParent(t, "inside")
	cache := container.NewCache(container.CacheConfig{})
	h := newHarnessWith(t, Config{Containers: cache, RuntimeParents: []string{parent}, HoldTimeout: 5 * time.Second})
	dir, id, started := startHeld(t, root, parent, "outer")
	waitStoppedIn(t, dir)
	h.named(cache, container.Info{ID: "ctr-outer", Name: "outer", Image: "test/image", CgroupID: id})
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("held process never released")
	}

	for _, rel := range []string{"inner", "inner/deeper"} {
		sub := filepath.Join(dir, rel)
		subID := makeCgroup(t, root, sub)
		if owner, ok := h.s.kern.Owner(subID); !ok || owner != id {
			t.Fatalf("%s: kernel owner %d (%v), want the container's cgroup %d", rel, owner, ok, id)
		}
		start := time.Now()
		cmd := exec.Command("/bin/sh", "-c", "true")
		cmd.SysProcAttr = inCgroup(t, sub)
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		// A held exec would wait for the 5 s timeout.
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("%s: a process in a cgroup inside a container took %s: held as a new container", rel, took)
		}
		e := h.rec.waitFor(t, rel+" exec", func(e *event.Event) bool {
			return e.Kind == event.KindExec && e.CgroupID == subID
		})
		if e.Container == nil || e.Container.ID != "ctr-outer" || e.HoldOutcome != "" {
			t.Fatalf("%s: exec names container %+v, hold outcome %q; want ctr-outer, not held", rel, e.Container, e.HoldOutcome)
		}
	}
	sizes, err := h.s.kern.MapSizes()
	if err != nil {
		t.Fatal(err)
	}
	if sizes["owners"] < 2 {
		t.Fatalf("owners map holds %d entries, want the 2 cgroups inside", sizes["owners"])
	}
}

// TestPrivilegedRecoverLostHold puts a stopped process into a pending container
// cgroup without an exec the sensor could report, as when the kernel stopped
// it but the ring had no room for the report: the sensor finds it at its
// polls and lets it go once the container is classified.
func TestPrivilegedRecoverLostHold(t *testing.T) {
	testenv.Privileged(t)
	root, parent := runtimeParent(t, "lost")
	cache := container.NewCache(container.CacheConfig{})
	h := newHarnessWith(t, Config{Containers: cache, RuntimeParents: []string{parent}, HoldTimeout: 2 * time.Second})
	scopeID := strings.Repeat("cd34", 16)
	dir := filepath.Join(root, parent, "cri-containerd-"+scopeID+".scope")
	id := makeCgroup(t, root, dir)
	if pending, err := h.s.kern.Pending(); err != nil || !slices.Contains(pending, id) {
		t.Fatalf("cgroup %d not pending: %v %v", id, pending, err)
	}
	cmd := selfStopped(t, dir)
	waitLetGo(t, cmd, "the stopped process of a pending cgroup")
	e := h.rec.waitFor(t, "recovered exec", func(e *event.Event) bool {
		return e.Kind == event.KindExec && e.PID == uint32(cmd.Process.Pid)
	})
	if e.Source != hold.SourceProcfs || e.HoldOutcome == "" || e.Container == nil || e.Container.ID != scopeID {
		t.Fatalf("recovered exec: source %q, outcome %q, container %+v", e.Source, e.HoldOutcome, e.Container)
	}
	if n := h.s.Snapshot().Holds["recovered"]; n != 1 {
		t.Fatalf("recovered holds %d, want 1", n)
	}
}

// TestPrivilegedAdoptRunning starts a sensor while a container's only process is
// stopped, as one held by a sensor that was killed: the new sensor names
// the container from its cgroup path, watches it, and lets the process go.
func TestPrivilegedAdoptRunning(t *testing.T) {
	testenv.Privileged(t)
	root, parent := runtimeParent(t, "adopt")
	scopeID := strings.Repeat("ef56", 16)
	dir := filepath.Join(root, parent, "cri-containerd-"+scopeID+".scope")
	id := makeCgroup(t, root, dir)
	cmd := selfStopped(t, dir)
	cache := container.NewCache(container.CacheConfig{})
	h := newHarnessWith(t, Config{Containers: cache, RuntimeParents: []string{parent}, HoldTimeout: 2 * time.Second})
	waitLetGo(t, cmd, "the stopped process of a running container")
	if info, ok := cache.Lookup(id); !ok || info.ID != scopeID {
		t.Fatalf("running container not named from its path: %+v %v", info, ok)
	}
	watched, err := h.s.Watched()
	if err != nil || !slices.Contains(watched, id) {
		t.Fatalf("running container %d not watched: %v", id, err)
	}
	e := h.rec.waitFor(t, "adopted exec", func(e *event.Event) bool {
		return e.Kind == event.KindExec && e.PID == uint32(cmd.Process.Pid)
	})
	if e.Source != hold.SourceProcfs || e.Container == nil || e.Container.ID != scopeID {
		t.Fatalf("adopted exec: source %q, container %+v", e.Source, e.Container)
	}
}

// selfStopped starts a shell outside every watched cgroup that moves itself
// into dir and stops itself there, without an exec: the state a lost exec
// report leaves behind. It returns once the shell is stopped in dir.
func selfStopped(tb testing.TB, dir string) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf("echo $$ > %s/cgroup.procs && kill -STOP $$ && exit 0", dir))
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill()
	})
	waitStoppedIn(tb, dir)
	return cmd
}

// waitLetGo waits for the stopped process cmd to be let go and to exit.
func waitLetGo(tb testing.TB, cmd *exec.Cmd, what string) {
	tb.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			tb.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		tb.Fatalf("%s was never let go", what)
	}
}

// inCgroup makes a command start in the cgroup dir.
func inCgroup(tb testing.TB, dir string) *syscall.SysProcAttr {
	tb.Helper()
	return &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgroupFD(tb, dir)}
}

// TestPrivilegedFirstContainerOfNewParent starts containerd, then a sensor,
// then at once the first container of a containerd namespace whose parent
// cgroup does not exist yet, again and again: each time the kernel takes
// the new cgroup for a container as it is made, and the container's first
// exec runs named (held until then, or named before it).
func TestPrivilegedFirstContainerOfNewParent(t *testing.T) {
	testenv.Privileged(t)
	rounds := 5
	if testing.Short() {
		rounds = 2
	}
	for i := range rounds {
		t.Run(fmt.Sprint("round-", i), func(t *testing.T) {
			ns := fmt.Sprintf("rf-new-%d-%d", os.Getpid(), i)
			h, _ := newContainerHarnessWith(t, "", runtime.Config{Namespaces: []string{ns}})
			root, err := hostfs.Cgroup2Root()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(root, ns)); err == nil {
				t.Fatalf("cgroup %s exists before its first container", ns)
			}
			t.Cleanup(func() { os.Remove(filepath.Join(root, ns)) })
			id := h.rt.NewID(t, "first")
			h.rt.Run(t, id, "true")
			// The container's own first exec: the runtime's re-exec of
			// itself in the new cgroup (outcome "runtime") runs unheld
			// before it.
			e := h.rec.waitFor(t, "first exec of "+id, func(e *event.Event) bool {
				return e.Kind == event.KindExec && e.Container != nil && e.Container.ID == id && e.HoldOutcome != event.HoldRuntime
			})
			// Either the exec was held until the container was named, or
			// the runtime named it first (the task exists before its
			// first exec) and its hold ended before the exec; in both the
			// kernel took the new cgroup for a container the moment it
			// was made: the runtime's setup in it was seen pending.
			switch {
			case e.HoldOutcome != "":
				if e.HoldOutcome != "released" {
					t.Fatalf("first exec: hold outcome %q, want released", e.HoldOutcome)
				}
			case e.Pending:
				t.Fatalf("first exec pending but not held: %+v", e)
			default:
				if !slices.ContainsFunc(h.rec.all(), func(o event.Event) bool { return o.CgroupID == e.CgroupID && o.Pending }) {
					t.Fatalf("the kernel never took cgroup %d for a new container: nothing of it was seen pending", e.CgroupID)
				}
			}
			if holds := h.s.Snapshot().Holds; holds["classified"] == 0 {
				t.Fatalf("no container classified: %v", holds)
			}
		})
	}
}
