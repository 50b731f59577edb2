package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/api"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/status"
	"github.com/ringfence/ringfence/sensor/store"
	"github.com/ringfence/ringfence/test/runtime"
	"github.com/ringfence/ringfence/test/testenv"
)

// TestHostContainerIdentity runs a container with a real containerd and runc:
// the daemon watches it without --watch-cgroup, and its events carry the
// container's id, name and image as ctr knows them.
func TestHostContainerIdentity(t *testing.T) {
	testenv.Privileged(t)
	rt := runtime.Start(t)
	bin := build(t)
	d := startDaemon(t, bin, "--containerd-socket", rt.Socket)
	id := rt.NewID(t, "rf-identity")
	before := time.Now()
	rt.Run(t, id, "sh", "-c", "echo x > /tmp/identity-marker")
	d.waitForContainerEvent(t, rt, id)

	// ringfence containers: every column, the row of this container.
	out, err := exec.Command(bin, "containers", "--api-socket", d.socket()).CombinedOutput()
	if err != nil {
		t.Fatalf("ringfence containers: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "ID NAME IMAGE POD CGROUP ID WATCHED SINCE STATE POLICIES" {
		t.Fatalf("ringfence containers header: %q", lines[0])
	}
	var row []string
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 1 && f[1] == id {
			row = f
		}
	}
	if len(row) < 7 || !strings.HasPrefix(id, row[0]) || row[2] != rt.Image || row[3] != "-" {
		t.Fatalf("ringfence containers has no row id/name/image/pod for %s:\n%s", id, out)
	}
	if _, err := strconv.ParseUint(row[4], 10, 64); err != nil {
		t.Fatalf("cgroup id column %q: %v", row[4], err)
	}
	since, err := time.Parse(time.RFC3339, row[5])
	if err != nil || since.Before(before.Add(-time.Second)) || since.After(time.Now()) {
		t.Fatalf("watched since %q (%v): want the time the daemon met the container, after %s", row[5], err, before.Format(time.RFC3339))
	}
}

// waitForContainerEvent waits for the marker write of container id and
// checks it names the container, and that the daemon lists the container.
func (d *daemon) waitForContainerEvent(t *testing.T, rt *runtime.Runtime, id string) {
	t.Helper()
	client := api.NewClient(d.socket())
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := client.Query(ctx, store.Query{Kinds: []event.Kind{event.KindFile}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range res.Events {
			var e event.Event
			if json.Unmarshal(raw, &e) != nil || e.Path != "/tmp/identity-marker" || (e.Container != nil && e.Container.ID != id) {
				continue
			}
			if e.Container == nil {
				t.Fatalf("event without its container: %s", raw)
			}
			if e.Container.ID != id || e.Container.Name != id || e.Container.Image != rt.Image {
				t.Fatalf("container %+v, want id and name %s, image %s", *e.Container, id, rt.Image)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			list, err := client.Containers(ctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range list {
				if c.ID == id && c.CgroupID == e.CgroupID && c.Image == rt.Image {
					return
				}
			}
			t.Fatalf("ringfence containers does not list %s with cgroup %d: %+v", id, e.CgroupID, list)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no file event from container %s; daemon stderr:\n%s", id, tail(d.stderr.String()))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

func (d *daemon) statusNow(t *testing.T) *status.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := api.NewClient(d.socket()).Status(ctx)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return s
}

// waitStatus polls the daemon's status until ok accepts it.
func (d *daemon) waitStatus(t *testing.T, what string, ok func(*status.Snapshot) bool) *status.Snapshot {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := d.statusNow(t)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(s)
			t.Fatalf("status never showed %s: %s", what, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestHostRuntimeRestart runs the daemon through two outages of containerd
// (the process alone; its containers run on). Started while containerd is
// down, the daemon names a running container from its cgroup path, then
// fully once containerd answers; when containerd goes away under it, it
// keeps naming that container, says it is disconnected in status and in
// ringfence_runtime_connected, reconnects, resyncs, and names a container
// started afterwards.
func TestHostRuntimeRestart(t *testing.T) {
	testenv.Privileged(t)
	rt := runtime.Start(t)
	bin := build(t)
	idA := rt.NewID(t, "rf-outage")
	marker := "/tmp/outage-marker"
	rt.RunDetached(t, idA, "sh", "-c", "while :; do echo x > "+marker+"; sleep 0.2; done")

	rt.KillDaemon(t)
	metrics := freeLoopback(t)
	d := startDaemon(t, bin, "--containerd-socket", rt.Socket, "--metrics-addr", metrics)
	d.waitStatus(t, "disconnected at start", func(s *status.Snapshot) bool { return s.Runtime != nil && !s.Runtime.Connected })
	waitMetric(t, metrics, "ringfence_runtime_connected", 0)
	// From the cgroup path: the id (also as the name), no image.
	d.waitMarker(t, marker, time.Now(), func(c *event.Container) bool { return c != nil && c.ID == idA && c.Name == idA })

	rt.Up(t)
	d.waitStatus(t, "connected", func(s *status.Snapshot) bool { return s.Runtime.Connected })
	waitMetric(t, metrics, "ringfence_runtime_connected", 1)
	d.waitMarker(t, marker, time.Now(), func(c *event.Container) bool { return c != nil && c.ID == idA && c.Image == rt.Image })

	rt.KillDaemon(t)
	down := d.waitStatus(t, "disconnected", func(s *status.Snapshot) bool { return !s.Runtime.Connected })
	if !down.Ready || down.Runtime.LastError == "" {
		t.Fatalf("while containerd is down: ready %v, last error %q", down.Ready, down.Runtime.LastError)
	}
	waitMetric(t, metrics, "ringfence_runtime_connected", 0)
	d.waitMarker(t, marker, time.Now(), func(c *event.Container) bool { return c != nil && c.ID == idA && c.Image == rt.Image })

	rt.Up(t)
	up := d.waitStatus(t, "reconnected", func(s *status.Snapshot) bool { return s.Runtime.Connected && s.Runtime.Reconnects >= 1 })
	waitMetric(t, metrics, "ringfence_runtime_connected", 1)
	waitMetric(t, metrics, "ringfence_runtime_reconnects_total", float64(up.Runtime.Reconnects))
	id := rt.NewID(t, "rf-after-restart")
	rt.Run(t, id, "sh", "-c", "echo x > /tmp/identity-marker")
	d.waitForContainerEvent(t, rt, id)
}

// waitMarker waits for a write of path, at or after since, whose container
// ok accepts. Writes before since, or whose
// container ok refuses, are passed over until the deadline.
func (d *daemon) waitMarker(t *testing.T, path string, since time.Time, ok func(*event.Container) bool) {
	t.Helper()
	client := api.NewClient(d.socket())
	deadline := time.Now().Add(30 * time.Second)
	var last []byte
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := client.Query(ctx, store.Query{Kinds: []event.Kind{event.KindFile}, Since: since})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range res.Events {
			var e event.Event
			if json.Unmarshal(raw, &e) != nil || e.Path != path {
				continue
			}
			if ok(e.Container) {
				return
			}
			last = raw
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write of %s since %s with the expected container; last seen: %s\ndaemon stderr:\n%s", path, since.Format(time.RFC3339Nano), last, tail(d.stderr.String()))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitMetric waits until the daemon's /metrics at addr shows the unlabelled
// metric name with value want.
func waitMetric(t *testing.T, addr, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	got := "absent"
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, name+" "); ok {
					got = v
					if f, err := strconv.ParseFloat(v, 64); err == nil && f == want {
						return
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %s (err %v), want %v", name, got, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestHostContainerChurn creates and removes many containers: the kernel's
// watch set and syscall counters and the container cache return to their
// sizes before, and the daemon's memory stays flat.
func TestHostContainerChurn(t *testing.T) {
	testenv.Privileged(t)
	n := 500
	if v, err := strconv.Atoi(os.Getenv("RINGFENCE_CHURN")); err == nil && v > 0 {
		n = v
	}
	// A namespace of its own, and so a parent cgroup of its own: the
	// containers other test packages run at the same time in the shared
	// "default" one are not this daemon's, and do not move its counts.
	ns := fmt.Sprintf("rf-churn-%d", os.Getpid())
	rt := runtime.StartWith(t, runtime.Config{Namespaces: []string{ns}})
	t.Cleanup(func() { os.Remove(cgroupDir(t, ns)) })
	bin := build(t)
	// A policy selects every container, so the policy state churns too:
	// members, and the addresses its sockets may bind.
	policy := filepath.Join(t.TempDir(), "churn.yaml")
	if err := os.WriteFile(policy, []byte(`apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata:
  name: churn
spec:
  mode: audit
  selector:
    names: ["rf-churn-*"]
  readOnlyRootFilesystem:
    allowWrites: ["/tmp/**"]
  bindInterfaces:
    interfaces: ["lo"]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, bin, "--containerd-socket", rt.Socket, "--container-parent", ns, "--container-grace", "1s", "--stdout=false", "--policy", policy)
	d.waitStatus(t, "connected", func(s *status.Snapshot) bool { return s.Runtime != nil && s.Runtime.Connected })
	// One container first, so that runtime-created parent cgroups exist in the baseline.
	rt.Run(t, rt.NewID(t, "rf-warm"), "true")
	base := d.waitStatus(t, "warm-up settled", func(s *status.Snapshot) bool {
		return s.Containers == 0 && s.Policy.Tracked == 0 && s.KernelMaps["pending"] == 0
	})
	rss0 := rssMB(t, d.cmd.Process.Pid)
	var rssMid float64
	for i := 0; i < n; i++ {
		// A listener, stopped once it is bound (7000 is 0x1B58).
		rt.Run(t, rt.NewID(t, "rf-churn"), "sh", "-c", `echo x > /tmp/f; cat /tmp/f >/dev/null; nc -l -p 7000 & for i in $(seq 500); do grep -q ":1B58 " /proc/net/tcp /proc/net/tcp6 && break; sleep 0.01; done; kill $! 2>/dev/null; wait; true`)
		if i == n/2 {
			rssMid = rssMB(t, d.cmd.Process.Pid)
		}
	}
	during := d.statusNow(t)
	if during.Events["exec/allow"] < uint64(n) {
		t.Fatalf("%d containers but %d exec events: they were not watched", n, during.Events["exec/allow"])
	}
	end := d.waitStatus(t, "back to baseline", func(s *status.Snapshot) bool {
		return s.Watched == base.Watched && s.Containers == base.Containers && s.SyscallCounters <= base.SyscallCounters &&
			s.Policy.Tracked == base.Policy.Tracked && maps.Equal(s.KernelMaps, base.KernelMaps)
	})
	// Each container's wildcard bind is outside the policy's interface:
	// proof that the policy selected every one of them.
	if v := end.Violations["churn/bindInterfaces/audit"]; v < uint64(n) {
		t.Fatalf("%d bind violations for %d containers: the policy did not select them all (%v)", v, n, end.Violations)
	}
	rss1 := rssMB(t, d.cmd.Process.Pid)
	t.Logf("%d containers: watched %d -> %d, containers %d -> %d, syscall counters %d -> %d, kernel maps %v -> %v, engine %d -> %d, holds %v; RSS %.1f, %.1f at %d, %.1f MB at the end",
		n, base.Watched, end.Watched, base.Containers, end.Containers, base.SyscallCounters, end.SyscallCounters,
		base.KernelMaps, end.KernelMaps, base.Policy.Tracked, end.Policy.Tracked, end.Holds, rss0, rssMid, n/2, rss1)
	if rss1 > rss0+30 {
		t.Fatalf("RSS grew from %.1f to %.1f MB over %d containers", rss0, rss1, n)
	}
	// Flat: the second half of the churn adds no more than a few MB (a
	// leak of 40 KB per container would add 10).
	if rss1 > rssMid+10 {
		t.Fatalf("RSS grew from %.1f MB halfway to %.1f MB at the end of %d containers", rssMid, rss1, n)
	}
	if end.Holds["timeout"] != 0 {
		t.Fatalf("holds timed out during the churn: %v", end.Holds)
	}
}

func rssMB(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestHostFirstInstruction starts containers whose entrypoint writes a file and
// binds a socket at once. The kernel stops each container's first exec
// before its first instruction until the daemon knows the container, so
// every event of every container, the first included, names it.
func TestHostFirstInstruction(t *testing.T) {
	testenv.Privileged(t)
	n := 100
	if v, err := strconv.Atoi(os.Getenv("RINGFENCE_FIRST_INSTRUCTION")); err == nil && v > 0 {
		n = v
	}
	// A namespace of its own: its parent cgroup does not exist until the
	// first container makes it, and that first container is held like the
	// others (the kernel knows the parent by name).
	ns := fmt.Sprintf("rf-first-%d", os.Getpid())
	rt := runtime.StartWith(t, runtime.Config{Namespaces: []string{ns}})
	t.Cleanup(func() { os.Remove(cgroupDir(t, ns)) })
	if _, err := os.Stat(cgroupDir(t, ns)); err == nil {
		t.Fatalf("cgroup %s exists before the first container", ns)
	}
	bin := build(t)
	d := startDaemon(t, bin, "--containerd-socket", rt.Socket, "--container-parent", ns, "--stdout=false")
	d.waitStatus(t, "connected", func(s *status.Snapshot) bool { return s.Runtime != nil && s.Runtime.Connected })
	before := d.statusNow(t).Holds

	ids := map[string]bool{}
	for i := 0; i < n; i++ {
		id := rt.NewID(t, "rf-first")
		ids[id] = true
		// The listener is stopped once it is bound (12345 is 0x3039).
		rt.Run(t, id, "sh", "-c", `echo x > /tmp/first-marker & nc -l -p 12345 & for i in $(seq 500); do grep -q ":3039 " /proc/net/tcp /proc/net/tcp6 && break; sleep 0.01; done; kill $! 2>/dev/null; wait; true`)
	}
	// Each container is classified once, before its first exec runs: held
	// there if it came first, or released before it.
	after := d.waitStatus(t, "every container classified", func(s *status.Snapshot) bool {
		return s.Holds["classified"]+s.Holds["timeout"] >= before["classified"]+before["timeout"]+uint64(n)
	})
	if after.Holds["timeout"] != before["timeout"] {
		t.Fatalf("holds timed out: %v (before %v)", after.Holds, before)
	}

	// A sentinel container, started once every other one has ended and
	// been classified: the kernel wrote each of their events into the ring
	// before any of the sentinel's, so once one of its events is stored,
	// all of theirs were dispatched. (An exit of the last container is no
	// such marker: its seq may exit before its background shell writes.)
	sentinel := rt.NewID(t, "rf-first-end")
	rt.Run(t, sentinel, "true")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		res, err := api.NewClient(d.socket()).Query(ctx, store.Query{Container: sentinel, Kinds: []event.Kind{event.KindExit}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Events) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	res, err := api.NewClient(d.socket()).Query(ctx, store.Query{})
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		first             event.Event
		file, bind, naked int
		held              int
	}
	byCgroup := map[uint64]*seen{}
	for _, raw := range res.Events {
		var e event.Event
		if json.Unmarshal(raw, &e) != nil || e.CgroupID == 0 || e.Kind == event.KindSyscalls {
			continue
		}
		s := byCgroup[e.CgroupID]
		if s == nil {
			s = &seen{first: e}
			byCgroup[e.CgroupID] = s
		}
		if e.Container == nil {
			s.naked++
		}
		if e.HoldOutcome != "" && e.HoldOutcome != event.HoldRuntime {
			s.held++
		}
		if e.Kind == event.KindFile && e.Path == "/tmp/first-marker" {
			s.file++
		}
		if e.Kind == event.KindBind && e.Port == 12345 {
			s.bind++
		}
	}
	found := 0
	for cg, s := range byCgroup {
		if s.file == 0 {
			continue
		}
		found++
		f := s.first
		if f.Container == nil || !ids[f.Container.ID] || f.Container.Name != f.Container.ID || f.Container.Image != rt.Image {
			t.Fatalf("cgroup %d: first event %s does not name its container: %+v", cg, f.Kind, f.Container)
		}
		if s.naked != 0 || s.bind == 0 || s.held > 1 {
			t.Fatalf("cgroup %d (%s): %d events without a container, %d binds, %d held execs",
				cg, f.Container.ID, s.naked, s.bind, s.held)
		}
	}
	if found != n {
		var missing []string
		for id := range ids {
			if evs := byCgroupOf(res.Events, id); !markerFrom(evs) {
				missing = append(missing, fmt.Sprintf("%s: %s", id, describe(evs)))
			}
		}
		t.Fatalf("%d containers wrote their marker, want %d; without: %v; lost: %v; holds: %v",
			found, n, missing, d.statusNow(t).Lost, after.Holds)
	}
	t.Logf("%d containers: every first event named its container; holds %v", n, after.Holds)
}

// byCgroupOf returns the events of the container id among raw.
func byCgroupOf(raw []json.RawMessage, id string) []event.Event {
	var out []event.Event
	for _, r := range raw {
		var e event.Event
		if json.Unmarshal(r, &e) == nil && e.Container != nil && e.Container.ID == id {
			out = append(out, e)
		}
	}
	return out
}

// describe lists events briefly (kind, and the path or program), for a
// failure message.
func describe(events []event.Event) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "[%s", e.Kind)
		if e.Path != "" {
			fmt.Fprintf(&b, " %q", e.Path)
		}
		if e.PathScope != "" {
			fmt.Fprintf(&b, " scope=%s", e.PathScope)
		}
		if e.Binary != "" {
			fmt.Fprintf(&b, " %s", e.Binary)
		}
		if e.HoldOutcome != "" {
			fmt.Fprintf(&b, " hold=%s", e.HoldOutcome)
		}
		b.WriteString("] ")
	}
	return fmt.Sprintf("%d events: %s", len(events), b.String())
}

// markerFrom reports whether events hold the write of the first marker.
func markerFrom(events []event.Event) bool {
	for _, e := range events {
		if e.Kind == event.KindFile && e.Path == "/tmp/first-marker" {
			return true
		}
	}
	return false
}
