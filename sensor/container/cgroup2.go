package container

import (
	"fmt"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/mountinfo"
)

// Cgroup2Mount returns where the cgroup v2 filesystem is mounted.
func Cgroup2Mount() (string, error) { return mountinfo.Cgroup2Root() }

// cgroupInode returns the inode of the cgroup directory rel below mount: the id
// bpf_get_current_cgroup_id() returns for its processes.
func cgroupInode(mount, rel string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(mount, rel), &st); err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", rel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 0, fmt.Errorf("cgroup %s: not a directory", rel)
	}
	return st.Ino, nil
}

// findCgroup walks the cgroup2 tree below mount for the directory whose
// inode is id and returns its path relative to mount.
func findCgroup(mount string, id uint64) (string, error) {
	found := ""
	err := filepath.WalkDir(mount, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			// Cgroups vanish while we walk; that is no reason to stop.
			if path != mount {
				return fs.SkipDir
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(path, &st) == nil && st.Ino == id {
			found = path
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if found == "" {
		return "", fmt.Errorf("cgroup id %d: no such cgroup below %s", id, mount)
	}
	rel, err := filepath.Rel(mount, found)
	if err != nil {
		return "", err
	}
	if rel == "." {
		return "/", nil
	}
	return "/" + rel, nil
}
