package container

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestParseCgroup2Mount(t *testing.T) {
	tests := []struct {
		name      string
		mountinfo string
		want      string
		wantErr   bool
	}{
		{
			name: "hybrid",
			mountinfo: "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" +
				"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n" +
				"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
			want: "/sys/fs/cgroup/unified",
		},
		{
			name:      "unified with optional fields",
			mountinfo: "36 25 0:30 / /sys/fs/cgroup rw,nosuid shared:9 master:2 - cgroup2 cgroup2 rw,nsdelegate\n",
			want:      "/sys/fs/cgroup",
		},
		{
			name:      "escaped space",
			mountinfo: `50 25 0:40 / /mnt/my\040cgroup rw - cgroup2 none rw` + "\n",
			want:      "/mnt/my cgroup",
		},
		{
			name:      "v1 only",
			mountinfo: "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n",
			wantErr:   true,
		},
		{name: "empty", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCgroup2Mount(strings.NewReader(tt.mountinfo))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseCgroup2Mount = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestUnescapeOctal(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "plain", in: "/sys/fs/cgroup", want: "/sys/fs/cgroup"},
		{name: "space", in: `/a\040b`, want: "/a b"},
		{name: "tab and backslash", in: `/a\011b\134c`, want: "/a\tb\\c"},
		{name: "truncated escape", in: `/a\04`, want: `/a\04`},
		{name: "not octal", in: `/a\09x`, want: `/a\09x`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unescapeOctal(tt.in); got != tt.want {
				t.Errorf("unescapeOctal(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

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
			got, err := findCgroup(root, tt.id)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("findCgroup = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
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
