package sensor

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ringfence/ringfence/sensor/hostfs"
	"github.com/ringfence/ringfence/test/testenv"
)

// TestPrivilegedPodCgroup: the pod cgroup of a container (what the sensor
// exempts for a pod of its own DaemonSet, so the kubelet's later
// containers there are exempt from their creation) is its parent when
// that is strictly below a runtime parent, and nothing otherwise.
func TestPrivilegedPodCgroup(t *testing.T) {
	testenv.Privileged(t)
	root, err := hostfs.Cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	parent := fmt.Sprintf("rf-podcg-%d", os.Getpid())
	ctr := filepath.Join(parent, "pod1", "ctr")
	if err := os.MkdirAll(filepath.Join(root, ctr), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, d := range []string{ctr, filepath.Dir(ctr), parent} {
			os.Remove(filepath.Join(root, d))
		}
	})
	want, err := hostfs.CgroupID(root, filepath.Join(parent, "pod1"))
	if err != nil {
		t.Fatal(err)
	}
	if id, ok, err := podCgroup(root, ctr, []string{parent}, ""); err != nil || !ok || id != want {
		t.Errorf("podCgroup(%s) = %d %v %v, want the pod's cgroup %d", ctr, id, ok, err, want)
	}
	if id, ok, err := podCgroup(root, "/"+ctr, []string{"/" + parent + "/"}, "1"); err != nil || !ok || id != want {
		t.Errorf("absolute forms, the pod's uid: %d %v %v, want %d", id, ok, err, want)
	}
	// Another pod's uid: refused, whatever the layout says.
	if _, ok, err := podCgroup(root, ctr, []string{parent}, "2"); ok || err == nil {
		t.Errorf("the cgroup of pod 1 for pod 2: %v %v, want refused", ok, err)
	}
	// The container's parent is the runtime parent itself: no pod cgroup
	// (exempting it would exempt every container).
	if _, ok, err := podCgroup(root, filepath.Join(parent, "pod1"), []string{parent}, ""); ok || err != nil {
		t.Errorf("a container directly below the runtime parent: pod cgroup %v %v, want none", ok, err)
	}
	if _, ok, err := podCgroup(root, "", []string{parent}, ""); ok || err != nil {
		t.Errorf("no cgroup path: %v %v, want none", ok, err)
	}
}

// TestPodCgroupOf: the kubelet's pod cgroup names, cgroupfs and systemd
// drivers; a QoS class's cgroup, or another pod's, is not the pod's.
func TestPodCgroupOf(t *testing.T) {
	const uid = "8f1b2c3d-0000-4a5b-9c8d-112233445566"
	for name, want := range map[string]bool{
		"pod" + uid: true,
		"kubepods-burstable-pod8f1b2c3d_0000_4a5b_9c8d_112233445566.slice": true,
		"kubepods-pod8f1b2c3d_0000_4a5b_9c8d_112233445566.slice":           true,
		"burstable":                    false,
		"kubepods-burstable.slice":     false,
		"pod" + uid + "x":              false,
		"podaaaa":                      false,
		"kubepods-burstable-pod.slice": false,
	} {
		if got := podCgroupOf(name, uid); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}
