package hostfs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// CgroupID returns the inode of the cgroup directory dir (a host path below
// mount, or a path relative to it): the id bpf_get_current_cgroup_id() returns for its
// processes. It checks that dir is a directory, not that it is on cgroup2
// (see CheckCgroup2).
func CgroupID(mount, dir string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(abs(mount, dir), &st); err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 0, fmt.Errorf("cgroup %s: not a directory", dir)
	}
	return st.Ino, nil
}

// CheckCgroup2 returns an error unless dir (as for CgroupID)
// is on the cgroup v2 filesystem: a cgroup v1 directory has ids the kernel
// programs never see.
func CheckCgroup2(mount, dir string) error {
	var sfs unix.Statfs_t
	if err := unix.Statfs(abs(mount, dir), &sfs); err != nil {
		return fmt.Errorf("cgroup %s: %w", dir, err)
	}
	if sfs.Type != unix.CGROUP2_SUPER_MAGIC {
		return fmt.Errorf("cgroup %s: not on the cgroup v2 filesystem (mounted at %s)", dir, mount)
	}
	return nil
}

// CreateCgroup makes dir (as for CgroupID) if it does not exist.
func CreateCgroup(mount, dir string) error {
	p := abs(mount, dir)
	if rel, err := filepath.Rel(mount, p); err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("cgroup %s: not below the cgroup v2 mount %s", dir, mount)
	}
	return os.MkdirAll(p, 0o755)
}

// abs returns dir as a path of the host: dir as given when it is already
// below mount, else dir taken relative to mount (a leading "/" included, as
// /proc/<pid>/cgroup writes it).
func abs(mount, dir string) string {
	if dir == mount || strings.HasPrefix(dir, mount+"/") {
		return dir
	}
	return filepath.Join(mount, dir)
}

// FindCgroup walks the cgroup2 tree below mount for the directory whose
// inode is id and returns its path relative to mount ("/" for the root).
func FindCgroup(mount string, id uint64) (string, error) {
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
	return relative(mount, found)
}

func relative(mount, p string) (string, error) {
	rel, err := filepath.Rel(mount, p)
	if err != nil {
		return "", err
	}
	if rel == "." {
		return "/", nil
	}
	return "/" + rel, nil
}

// CgroupsBelow lists the cgroups below each of dirs (relative to mount),
// at most depth levels down, by id, with their paths relative to mount.
// Directories that vanish or do not exist yet are passed over.
func CgroupsBelow(mount string, dirs []string, depth int) map[uint64]string {
	out := make(map[uint64]string)
	for _, dir := range dirs {
		top := abs(mount, dir)
		filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil // gone meanwhile, or not there yet
			}
			rel, rerr := filepath.Rel(top, p)
			if rerr != nil || rel == "." {
				return nil
			}
			if strings.Count(rel, "/") >= depth {
				return fs.SkipDir
			}
			var st unix.Stat_t
			if unix.Stat(p, &st) == nil {
				out[st.Ino] = "/" + filepath.Join(strings.TrimPrefix(dir, "/"), rel)
			}
			return nil
		})
	}
	return out
}

// CgroupProcs returns the pids in the cgroup rel (as for CgroupID).
func CgroupProcs(mount, rel string) ([]uint32, error) {
	b, err := os.ReadFile(filepath.Join(abs(mount, rel), "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []uint32
	for _, f := range strings.Fields(string(b)) {
		if pid, err := parseUint32(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
