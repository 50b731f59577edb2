package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cilium/ebpf/link"

	"github.com/ringfence/ringfence/test/testenv"
)

// pinTestDir returns a pin directory of the test's own on bpffs, removed
// (Uninstall) when the test ends.
func pinTestDir(t *testing.T) string {
	t.Helper()
	if err := EnsureMounts(); err != nil {
		t.Fatal(err)
	}
	dir := fmt.Sprintf("%s/ringfence-kernel-test-%d-%s", BPFFSPath, os.Getpid(), t.Name())
	t.Cleanup(func() {
		if _, err := os.Stat(dir); err == nil {
			if _, _, err := Uninstall(dir); err != nil {
				t.Errorf("uninstall: %v", err)
			}
		}
	})
	return dir
}

func loadPinned(t *testing.T, opts Options) *Sensor {
	t.Helper()
	p, err := ProbeTier()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Runs before pinTestDir's Uninstall, which needs the directory's lock.
	t.Cleanup(func() { s.Close() })
	return s
}

// linkIDs returns the ids of the links pinned in dir.
func linkIDs(t *testing.T, dir string) []link.ID {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, linksDir))
	if err != nil {
		t.Fatal(err)
	}
	var ids []link.ID
	for _, e := range entries {
		l, err := link.LoadPinnedLink(filepath.Join(dir, linksDir, e.Name()), nil)
		if err != nil {
			t.Fatal(err)
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, info.ID)
	}
	slices.Sort(ids)
	return ids
}

// attached reports whether a link with id is still in the kernel.
func attached(id link.ID) bool {
	l, err := link.NewFromID(id)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// TestPrivilegedPinsSurviveAndAdopt: programs and maps pinned by one load
// stay attached and filled after its process lets go of them, and a load of
// the same build adopts them without detaching anything; another build
// replaces the programs, the new attached before the old detached, the
// maps carried over; a build whose attach fails leaves the pinned set as it
// was; capacity changes carry every entry over; Uninstall leaves nothing.
func TestPrivilegedPinsSurviveAndAdopt(t *testing.T) {
	testenv.Privileged(t)
	dir := pinTestDir(t)

	first := loadPinned(t, Options{PinDir: dir, Version: "a"})
	if first.State() != StateNew {
		t.Fatalf("first load: %s", first.State())
	}
	if err := first.Watch(4242); err != nil {
		t.Fatal(err)
	}
	if err := first.Commit(); err != nil {
		t.Fatal(err)
	}
	ids := linkIDs(t, dir)
	if len(ids) == 0 {
		t.Fatal("no link pinned")
	}
	first.Close()
	for _, id := range ids {
		if !attached(id) {
			t.Fatalf("link %d went with the process that made it", id)
		}
	}

	again := loadPinned(t, Options{PinDir: dir, Version: "a"})
	if again.State() != StateAdopted {
		t.Fatalf("same build: %s, want adopted", again.State())
	}
	if w, err := again.Watched(); err != nil || !slices.Contains(w, 4242) {
		t.Fatalf("the pinned watched map lost its entry: %v %v", w, err)
	}
	if err := again.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := linkIDs(t, dir); !slices.Equal(got, ids) {
		t.Fatalf("adopting replaced links: %v, were %v", got, ids)
	}
	again.Close()

	// Another build: a new set replaces the old, which is detached.
	up := loadPinned(t, Options{PinDir: dir, Version: "b"})
	if up.State() != StateUpgrade {
		t.Fatalf("another build: %s, want upgrade", up.State())
	}
	if err := up.Commit(); err != nil {
		t.Fatal(err)
	}
	newIDs := linkIDs(t, dir)
	for _, id := range ids {
		if attached(id) {
			t.Fatalf("old link %d still attached after the upgrade", id)
		}
	}
	if w, _ := up.Watched(); !slices.Contains(w, 4242) {
		t.Fatal("the upgrade lost the watched map's entry")
	}
	up.Close()

	// A new set that cannot attach changes nothing.
	broken := loadPinned(t, Options{PinDir: dir, Version: "c", FailAttach: "rf_exit"})
	if err := broken.Commit(); err == nil {
		t.Fatal("the failpoint did not fail the commit")
	}
	broken.Close()
	if got := linkIDs(t, dir); !slices.Equal(got, newIDs) {
		t.Fatalf("a failed upgrade changed the pinned links: %v, were %v", got, newIDs)
	}
	for _, id := range newIDs {
		if !attached(id) {
			t.Fatalf("link %d detached by a failed upgrade", id)
		}
	}

	// A capacity change: the map is new, its entries carried over.
	resized := loadPinned(t, Options{PinDir: dir, Version: "b", MapEntries: 4096})
	if err := resized.Commit(); err != nil {
		t.Fatal(err)
	}
	if w, _ := resized.Watched(); !slices.Contains(w, 4242) {
		t.Fatal("resizing lost the watched map's entry")
	}
	if c := resized.MapCapacities()["watched"]; c != 4096 {
		t.Fatalf("watched capacity %d, want 4096", c)
	}
	resized.Close()

	removed, _, err := Uninstall(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) == 0 {
		t.Fatal("uninstall removed nothing")
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s still there after uninstall: %v", dir, err)
	}
	for _, id := range newIDs {
		if attached(id) {
			t.Fatalf("link %d still attached after uninstall", id)
		}
	}
}

// TestPrivilegedPinsLocked: a second daemon on the same pins is refused.
func TestPrivilegedPinsLocked(t *testing.T) {
	testenv.Privileged(t)
	dir := pinTestDir(t)
	s := loadPinned(t, Options{PinDir: dir})
	defer s.Close()
	p, err := ProbeTier()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p, Options{PinDir: dir}); err == nil {
		t.Fatal("a second load took the same pin directory")
	}
}
