package kernel

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ringfence/ringfence/sensor/hostfs"
	"github.com/ringfence/ringfence/test/testenv"
)

// loaded loads the tier the probe chooses, its programs not attached,
// closed when the test ends.
func loaded(t *testing.T) (*Sensor, Probe) {
	t.Helper()
	testenv.Privileged(t)
	p, err := ProbeTier()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, p
}

// loadCommitted loads and commits the tier the probe chooses, closed when
// the test ends.
func loadCommitted(t *testing.T) (*Sensor, Probe) {
	t.Helper()
	s, p := loaded(t)
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	return s, p
}

// testCgroup makes the cgroup dir (relative to the cgroup2 root), removed
// when the test ends, and returns its id.
func testCgroup(t *testing.T, p Probe, dir string) uint64 {
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

// watchedCgroup makes the cgroup dir (testCgroup), has s watch it, and
// returns its id and a descriptor of it to start processes in
// (SysProcAttr.CgroupFD), closed when the test ends.
func watchedCgroup(t *testing.T, s *Sensor, p Probe, dir string) (uint64, int) {
	t.Helper()
	id := testCgroup(t, p, dir)
	if err := s.Watch(id); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(p.Cgroup2Root, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return id, int(f.Fd())
}
