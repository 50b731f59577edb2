package container

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Cgroup2Mount returns where the cgroup v2 filesystem is mounted, from
// /proc/self/mountinfo: /sys/fs/cgroup on a unified host, often
// /sys/fs/cgroup/unified on a hybrid one.
func Cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	return parseCgroup2Mount(f)
}

// parseCgroup2Mount returns the mount point of the first cgroup2 filesystem
// in a mountinfo listing.
func parseCgroup2Mount(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw":
		// a variable number of optional fields ends at "-", the type follows.
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) >= 5 && len(g) >= 1 && g[0] == "cgroup2" {
			return unescapeOctal(f[4]), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no cgroup2 filesystem is mounted")
}

// unescapeOctal undoes mountinfo's escaping of space, tab, newline and
// backslash as \ooo.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

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
