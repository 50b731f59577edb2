package hostfs

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// RootFS is where a container's root filesystem is, as an object of the
// kernel: the device of its filesystem, and the directory of that
// filesystem that is the container's root ("/" for a filesystem of its
// own, as overlayfs gives each container).
type RootFS struct {
	Dev  uint32
	Root string
	// Host is where that root is visible in the host's mount namespace,
	// "" when it is not.
	Host string
}

// RootOfProcess returns the root filesystem of pid's mount namespace: the
// mount at "/" in /proc/<pid>/mountinfo below procRoot. Only as good as
// the process: read it while the container's own code has not run (its
// first exec, held), so that nothing the container did can change it.
func RootOfProcess(procRoot string, pid uint32) (RootFS, error) {
	mounts, err := ReadFile(filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10), "mountinfo"))
	if err != nil {
		return RootFS{}, fmt.Errorf("root filesystem of process %d: %w", pid, err)
	}
	// Mounts over "/" stack: the last one is what the namespace sees.
	var root *Mount
	for i := range mounts {
		if mounts[i].Point == "/" {
			root = &mounts[i]
		}
	}
	if root == nil {
		return RootFS{}, fmt.Errorf("root filesystem of process %d: no mount at /", pid)
	}
	return RootFS{Dev: root.Dev, Root: root.Root}, nil
}

// OnHost fills r.Host from the host's mount table (mountinfo, e.g.
// /proc/1/mountinfo): a mount of r's filesystem that shows r's root.
func OnHost(mountinfo string, r RootFS) RootFS {
	mounts, err := ReadFile(mountinfo)
	if err != nil {
		return r
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i]
		if m.Dev != r.Dev {
			continue
		}
		if rel, ok := Below(r.Root, m.Root); ok {
			r.Host = filepath.Join(m.Point, rel)
			return r
		}
	}
	return r
}

// MountAt returns the filesystem mounted at point in the calling
// process's mount namespace, as a root filesystem (the mount's root).
func MountAt(point string) (RootFS, error) {
	mounts, err := Read()
	if err != nil {
		return RootFS{}, err
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if m := mounts[i]; m.Point == point {
			return RootFS{Dev: m.Dev, Root: m.Root, Host: point}, nil
		}
	}
	return RootFS{}, fmt.Errorf("nothing is mounted at %s", point)
}

// RootOfBundle returns the root filesystem a runtime mounted on the host
// for a container: the mount, in the host's table (mountinfo, e.g.
// /proc/1/mountinfo), whose mount point ends in /<namespace>/<id>/rootfs,
// as containerd lays out its bundles. It names the object, whatever any
// process of the container did since. ok is false when there is none.
func RootOfBundle(mountinfo, namespace, id string) (RootFS, bool, error) {
	mounts, err := ReadFile(mountinfo)
	if err != nil {
		return RootFS{}, false, fmt.Errorf("host mount table: %w", err)
	}
	suffix := "/" + namespace + "/" + id + "/rootfs"
	for i := len(mounts) - 1; i >= 0; i-- {
		if m := mounts[i]; strings.HasSuffix(m.Point, suffix) {
			return RootFS{Dev: m.Dev, Root: m.Root, Host: m.Point}, true, nil
		}
	}
	return RootFS{}, false, nil
}
