package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/hostfs"
)

// cgroup is a cgroup v2 directory the bench created; fd is what
// SysProcAttr.CgroupFD needs and id is what the sensor reports as cgroup_id.
type cgroup struct {
	path string
	id   uint64
	fd   int
}

func cgroup2Root() (string, error) { return hostfs.Cgroup2Root() }

func createCgroup(root, name string) (*cgroup, error) {
	p := filepath.Join(root, name)
	if err := os.Mkdir(p, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(p)
		return nil, fmt.Errorf("open cgroup: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		os.Remove(p)
		return nil, fmt.Errorf("stat cgroup %s: %w", p, err)
	}
	return &cgroup{path: p, id: st.Ino, fd: fd}, nil
}

// remove deletes the cgroup, retrying while the kernel still counts a
// just-reaped child as a member.
func (c *cgroup) remove() error {
	unix.Close(c.fd)
	var err error
	for range 50 {
		if err = unix.Rmdir(c.path); err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", c.path, err)
}
