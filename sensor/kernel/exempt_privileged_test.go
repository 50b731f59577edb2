package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ringfence/ringfence/sensor/hostfs"
	"github.com/ringfence/ringfence/test/testenv"
)

// TestPrivilegedExemptBelow: a cgroup made below an exempt one (a restarted
// sensor container in the sensor's pod) is exempt from the moment it is
// made, and never pending, even below a runtime parent; its sibling outside
// the exempt cgroup is pending as every new container; exemption goes with
// the cgroup.
func TestPrivilegedExemptBelow(t *testing.T) {
	testenv.Privileged(t)
	p, err := ProbeTier()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	parent := fmt.Sprintf("ringfence-exempt-test-%d", os.Getpid())
	mk := func(dir string) uint64 {
		t.Helper()
		if err := hostfs.CreateCgroup(p.Cgroup2Root, dir); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(filepath.Join(p.Cgroup2Root, dir)) })
		id, err := hostfs.CgroupID(p.Cgroup2Root, dir)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	parentID := mk(parent)
	if err := s.AddRuntimeParent(parentID); err != nil {
		t.Fatal(err)
	}
	pod := mk(parent + "/sensor-pod")
	if pending, _ := s.Pending(); !slices.Contains(pending, pod) {
		t.Fatalf("the pod-to-be %d is not pending below a runtime parent", pod)
	}
	if err := s.Exempt(pod); err != nil {
		t.Fatal(err)
	}
	restarted := mk(parent + "/sensor-pod/container-2")
	other := mk(parent + "/other")
	exempt, _ := s.Exempted()
	pending, _ := s.Pending()
	if !slices.Contains(exempt, restarted) || slices.Contains(pending, restarted) {
		t.Fatalf("cgroup made below the exempt one: exempt %v, pending %v", slices.Contains(exempt, restarted), slices.Contains(pending, restarted))
	}
	if slices.Contains(exempt, other) || !slices.Contains(pending, other) {
		t.Fatalf("a container beside the sensor's pod: exempt %v, pending %v", slices.Contains(exempt, other), slices.Contains(pending, other))
	}
	if err := os.Remove(filepath.Join(p.Cgroup2Root, parent, "sensor-pod/container-2")); err != nil {
		t.Fatal(err)
	}
	if exempt, _ := s.Exempted(); slices.Contains(exempt, restarted) {
		t.Fatal("exemption outlived its cgroup")
	}
}
