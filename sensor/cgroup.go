package sensor

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// CgroupID returns the cgroup v2 id of dir, which is its inode number: the
// value bpf_get_current_cgroup_id() returns for processes in it. dir may be
// relative to the cgroup2 root.
func CgroupID(cgroup2Root, dir string) (uint64, string, error) {
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(cgroup2Root, dir)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return 0, dir, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	if fs.Type != unix.CGROUP2_SUPER_MAGIC {
		return 0, dir, fmt.Errorf("cgroup %s: not on the cgroup v2 filesystem (mounted at %s)", dir, cgroup2Root)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, dir, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 0, dir, fmt.Errorf("cgroup %s: not a directory", dir)
	}
	return st.Ino, dir, nil
}

// createCgroup makes dir (relative to the cgroup2 root, or absolute below it)
// if it does not exist.
func createCgroup(cgroup2Root, dir string) error {
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(cgroup2Root, dir)
	}
	if rel, err := filepath.Rel(cgroup2Root, dir); err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("cgroup %s: not below the cgroup v2 mount %s", dir, cgroup2Root)
	}
	return os.MkdirAll(dir, 0o755)
}
