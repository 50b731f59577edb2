package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestPrivilegedExemptBelow: a cgroup made below an exempt one (a restarted
// sensor container in the sensor's pod) is exempt from the moment it is
// made, and never pending, even below a runtime parent; its sibling outside
// the exempt cgroup is pending as every new container; exemption goes with
// the cgroup.
func TestPrivilegedExemptBelow(t *testing.T) {
	s, p := loadCommitted(t)
	parent := fmt.Sprintf("ringfence-exempt-test-%d", os.Getpid())
	mk := func(dir string) uint64 { return testCgroup(t, p, dir) }
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
