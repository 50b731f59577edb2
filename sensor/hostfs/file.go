package hostfs

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// KernelDev converts a device number as stat(2) gives it to the kernel's
// internal encoding (major << 20 | minor), which BPF programs read from a
// superblock.
func KernelDev(dev uint64) uint32 {
	return unix.Major(dev)<<20 | unix.Minor(dev)
}

// FileID returns the device (kernel encoding) and inode of the file at
// path, following symlinks: /proc/<pid>/exe names a process's program.
func FileID(path string) (dev uint32, ino uint64, err error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return KernelDev(st.Dev), st.Ino, nil
}

// MemfdDev returns the device of the kernel's internal tmpfs, where every
// memfd lives: a file on it is an anonymous memory file, which no process
// can reach by a path.
func MemfdDev() (uint32, error) {
	fd, err := unix.MemfdCreate("ringfence-probe", unix.MFD_CLOEXEC)
	if err != nil {
		return 0, fmt.Errorf("memfd: %w", err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("memfd: %w", err)
	}
	return KernelDev(st.Dev), nil
}

// DevOfNearest returns the device (kernel encoding) of the filesystem
// holding path, or of its nearest existing ancestor when path is gone
// (unlinked, or not yet created); known is false when nothing of it is.
func DevOfNearest(path string) (dev uint32, known bool) {
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		var st unix.Stat_t
		if unix.Lstat(p, &st) == nil {
			return KernelDev(st.Dev), true
		}
		if p == "/" || p == "." {
			return 0, false
		}
	}
}
