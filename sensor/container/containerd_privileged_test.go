package container

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/hostfs"
	"github.com/ringfence/ringfence/test/runtime"
	"github.com/ringfence/ringfence/test/testenv"
)

// TestPrivilegedWatcherContainerd follows containers of a real containerd from start
// to exit.
func TestPrivilegedWatcherContainerd(t *testing.T) {
	rt := runtime.Start(t)
	cg2 := cgroup2(t)

	// One container before the watcher starts, found by the first sync, and
	// one after, found from the events.
	early := rt.RunDetached(t, rt.NewID(t, "early"), "sleep", "30")
	w, rec := startWatcher(t, WatcherConfig{Socket: rt.Socket, Cache: NewCache(CacheConfig{Grace: time.Minute})})
	waitFor(t, "connection", func() bool { return w.Status().Connected })
	rec.waitStarted(t, early.ID)

	id := rt.NewID(t, "watched")
	c := rt.With("--label", LabelPodName+"=web-0", "--label", LabelPodNamespace+"=shop").
		RunDetached(t, id, "sleep", "30")
	announced := rec.waitStarted(t, id)
	wantCgroup := inode(t, filepath.Join(cg2, runtime.Namespace, id))
	if announced.CgroupID != wantCgroup {
		t.Fatalf("OnStart cgroup id = %d, want %d", announced.CgroupID, wantCgroup)
	}

	// OnStart comes with the task's creation; its start follows.
	var info Info
	waitFor(t, "the start time", func() bool {
		var ok bool
		info, ok = w.Cache().Lookup(wantCgroup)
		return ok && !info.Started.IsZero()
	})
	pid := uint32(c.Pid(t))
	checks := []struct {
		name      string
		got, want any
	}{
		{"ID", info.ID, id},
		{"Name", info.Name, id},
		{"Namespace", info.RuntimeNamespace, runtime.Namespace},
		{"Runtime", info.Runtime, RuntimeContainerd},
		{"Image", info.Image, rt.Image},
		{"ImageDigest prefix", strings.HasPrefix(info.ImageDigest, "sha256:"), true},
		{"Pod", info.Pod, "web-0"},
		{"PodNamespace", info.PodNamespace, "shop"},
		{"Label", info.Labels[LabelPodName], "web-0"},
		{"Pid", info.Pid, pid},
		{"CgroupID", info.CgroupID, wantCgroup},
		{"CgroupPath", info.CgroupPath, "/" + runtime.Namespace + "/" + id},
		{"Spec present", info.Spec != nil, true},
		{"Spec args", specArgs(info), "sleep 30"},
		{"Created set", !info.Created.IsZero(), true},
		{"Gone", info.Gone(), false},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
	if st := w.Status(); st.Containers != 2 || st.Version == "" || st.LastSync.IsZero() {
		t.Errorf("status = %+v, want 2 containers, a version and a sync", st)
	}
	if ids := listIDs(w.Cache()); !slices.Contains(ids, id) || !slices.Contains(ids, early.ID) {
		t.Errorf("List = %v, want both containers", ids)
	}

	// Without the API, the cgroup alone still names the container.
	fb, ok, err := Fallback(cg2, wantCgroup, "")
	if err != nil || !ok || fb.ID != id || fb.Runtime != RuntimeContainerd || fb.CgroupPath != info.CgroupPath {
		t.Errorf("Fallback = %+v, %v, %v", fb, ok, err)
	}

	c.Kill(t)
	gone := rec.waitGone(t, id)
	if !gone.Gone() || gone.ExitStatus != 137 || gone.CgroupID != wantCgroup {
		t.Errorf("OnGone = %+v, want exited with 137", gone)
	}
	// Late events still resolve within the grace period.
	if info, ok := w.Cache().Lookup(wantCgroup); !ok || info.ID != id || !info.Gone() {
		t.Errorf("Lookup after exit = %+v, %v; want the gone container", info, ok)
	}
	c.Remove(t)
	if started, gone := rec.count(id); started != 1 || gone != 1 {
		t.Errorf("OnStart called %d times, OnGone %d; want once each", started, gone)
	}
	if st := w.Status(); st.Containers != 1 {
		t.Errorf("status counts %d containers, want 1", st.Containers)
	}
}

// TestPrivilegedWatcherReconnect takes containerd away from the watcher twice. The
// watcher reaches it through a proxy that accepts no connection while a
// change happens that only a resync after reconnecting can find: first
// containerd is stopped and started again with the script and a container
// started, then the connection alone is cut and a container removed.
func TestPrivilegedWatcherReconnect(t *testing.T) {
	rt := runtime.Start(t)
	cg2 := cgroup2(t)
	px := startProxy(t, rt.Socket)
	w, rec := startWatcher(t, WatcherConfig{
		Socket:     px.path,
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond,
	})
	waitFor(t, "connection", func() bool { return w.Status().Connected })
	if st := w.Status(); st.LastError != "" {
		t.Errorf("connected at the first attempt, yet an error: %+v", st)
	}
	before := rt.RunDetached(t, rt.NewID(t, "before"), "sleep", "60")
	rec.waitStarted(t, before.ID)

	// Containerd goes down under the open connection.
	px.stopAccepting(t)
	rt.Down(t)
	waitFor(t, "the disconnection", func() bool { return !w.Status().Connected })
	if st := w.Status(); st.LastError == "" || st.LastErrorAt.IsZero() {
		t.Errorf("disconnected without an error: %+v", st)
	}
	rt.Up(t)
	during := rt.RunDetached(t, rt.NewID(t, "during"), "sleep", "60")
	if st := w.Status(); st.Connected || st.Reconnects != 0 {
		t.Fatalf("watcher reconnected while it could not: %+v", st)
	}
	px.listen(t)
	waitFor(t, "the reconnection", func() bool { st := w.Status(); return st.Connected && st.Reconnects == 1 })

	found := rec.waitStarted(t, during.ID)
	if want := inode(t, filepath.Join(cg2, runtime.Namespace, during.ID)); found.CgroupID != want {
		t.Errorf("resynced container has cgroup id %d, want %d", found.CgroupID, want)
	}
	if info, ok := w.Cache().Lookup(found.CgroupID); !ok || info.ID != during.ID || info.Image != rt.Image {
		t.Errorf("Lookup = %+v, %v", info, ok)
	}
	// The stop removed this one through containerd, whose events may or may
	// not have reached the watcher before it went: either way, once.
	rec.waitGone(t, before.ID)

	// The connection alone goes; the container removed meanwhile sends its
	// events to nobody.
	px.cut(t)
	waitFor(t, "the second disconnection", func() bool { return !w.Status().Connected })
	during.Remove(t)
	if _, gone := rec.count(during.ID); gone != 0 {
		t.Fatal("OnGone while disconnected")
	}
	px.listen(t)
	waitFor(t, "the second reconnection", func() bool { st := w.Status(); return st.Connected && st.Reconnects == 2 })
	if gone := rec.waitGone(t, during.ID); !gone.Gone() || gone.CgroupID != found.CgroupID {
		t.Errorf("OnGone = %+v", gone)
	}
	if info, ok := w.Cache().Lookup(found.CgroupID); !ok || !info.Gone() {
		t.Errorf("Lookup after the resync = %+v, %v; want the gone container", info, ok)
	}

	for _, id := range []string{before.ID, during.ID} {
		if started, gone := rec.count(id); started != 1 || gone != 1 {
			t.Errorf("%s: OnStart called %d times, OnGone %d; want once each", id, started, gone)
		}
	}
	if st := w.Status(); st.Containers != 0 {
		t.Errorf("status counts %d containers, want 0", st.Containers)
	}
}

func specArgs(i Info) string {
	if i.Spec == nil || i.Spec.Process == nil {
		return ""
	}
	return strings.Join(i.Spec.Process.Args, " ")
}

func listIDs(c *Cache) []string {
	var ids []string
	for _, i := range c.List() {
		ids = append(ids, i.ID)
	}
	return ids
}

// cgroup2 returns the cgroup v2 mount, making the test unavailable without.
func cgroup2(tb testing.TB) string {
	tb.Helper()
	m, err := hostfs.Cgroup2Root()
	if err != nil {
		testenv.Unavailable(tb, "no cgroup v2 mount: "+err.Error())
	}
	return m
}
