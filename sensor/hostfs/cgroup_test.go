package hostfs

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFindCgroup walks an ordinary directory tree: finding a directory by
// inode does not depend on the filesystem.
func TestFindCgroup(t *testing.T) {
	root := t.TempDir()
	dirs := []string{"a", "a/b", "a/b/c", "d"}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		id      uint64
		want    string
		wantErr bool
	}{
		{name: "root", id: inode(t, root), want: "/"},
		{name: "deep", id: inode(t, filepath.Join(root, "a/b/c")), want: "/a/b/c"},
		{name: "sibling", id: inode(t, filepath.Join(root, "d")), want: "/d"},
		{name: "absent", id: 1<<62 + 7, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FindCgroup(root, tt.id)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("FindCgroup = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// inode returns the inode number of path.
func inode(tb testing.TB, path string) uint64 {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
