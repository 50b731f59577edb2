package hostfs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCanonical(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc", "tmp", "tmp/sub"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"tmp/abs":   "/etc/passwd",   // absolute: from the root, not the host's /
		"tmp/rel":   "../etc/shadow", // relative: from its directory
		"tmp/dir":   "/etc",          // a directory on the way
		"tmp/loop":  "loop",          // resolves forever
		"tmp/out":   "../../../../../etc/hosts",
		"tmp/sub/x": "../abs", // a chain
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name, in string
		follow   bool
		want     string
	}{
		{"plain", "/etc/passwd", true, "/etc/passwd"},
		{"dot-dot", "/tmp/../etc/passwd", true, "/etc/passwd"},
		{"dot-dot above the root", "/../../etc/passwd", true, "/etc/passwd"},
		{"doubled slashes", "//tmp///x", true, "/tmp/x"},
		{"absolute symlink", "/tmp/abs", true, "/etc/passwd"},
		{"final symlink not followed", "/tmp/abs", false, "/tmp/abs"},
		{"relative symlink", "/tmp/rel", true, "/etc/shadow"},
		{"symlinked directory", "/tmp/dir/group", false, "/etc/group"},
		{"escape by dot-dot in a link", "/tmp/out", true, "/etc/hosts"},
		{"chain", "/tmp/sub/x", true, "/etc/passwd"},
		{"loop", "/tmp/loop", true, "/tmp/loop"},
		{"proc self root", "/proc/self/root/etc/passwd", true, "/etc/passwd"},
		{"proc pid root", "/proc/42/root/tmp/../etc/x", true, "/etc/x"},
		{"proc self cwd is not the root", "/proc/self/cwd/x", true, "/proc/self/cwd/x"},
		{"new file", "/tmp/new", true, "/tmp/new"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Canonical(root, c.in, c.follow); got != c.want {
				t.Fatalf("Canonical(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestBelow(t *testing.T) {
	for _, c := range []struct {
		p, dir, rel string
		ok          bool
	}{
		{"/a/b/c", "/a/b", "/c", true},
		{"/a/b", "/a/b", "/", true},
		{"/a/bc", "/a/b", "", false},
		{"/x", "/", "/x", true},
	} {
		if rel, ok := Below(c.p, c.dir); rel != c.rel || ok != c.ok {
			t.Errorf("Below(%q, %q) = %q %v, want %q %v", c.p, c.dir, rel, ok, c.rel, c.ok)
		}
	}
}

func TestFileIDs(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dev, ino, err := FileID(f)
	if err != nil || ino == 0 {
		t.Fatalf("FileID: %d %d %v", dev, ino, err)
	}
	m, err := MountAt("/")
	if err != nil {
		t.Fatal(err)
	}
	if KernelDev(0x0803) != 8<<20|3 || KernelDev(0x1234_5678_9abc) == 0 {
		t.Fatal("KernelDev")
	}
	mem, err := MemfdDev()
	if err != nil || mem == 0 || mem == m.Dev {
		t.Fatalf("memfd device %d (root's %d): %v", mem, m.Dev, err)
	}
}
