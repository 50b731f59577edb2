package cluster

import (
	"fmt"
	"os/exec"
	"slices"
)

const bpffs = "/sys/fs/bpf"

// prepareBPFFS readies the node's bpffs the way systemd leaves it on a
// usual node: mounted at /sys/fs/bpf, and a shared mount, which a pod's
// HostToContainer propagation requires. What it changes, Down puts back.
func (c *Cluster) prepareBPFFS() error {
	mounts := mountPoints()
	if !slices.Contains(mounts, bpffs) && !slices.Contains(mounts, bpffs+" (shared)") {
		if err := run("mount", "-t", "bpf", "bpf", bpffs); err != nil {
			return err
		}
		c.mountedBPFFS = true
		mounts = mountPoints()
	}
	if !slices.Contains(mounts, bpffs+" (shared)") {
		if err := run("mount", "--make-shared", bpffs); err != nil {
			return err
		}
		c.sharedBPFFS = true
	}
	return nil
}

// restoreBPFFS undoes prepareBPFFS.
func (c *Cluster) restoreBPFFS() error {
	if c.mountedBPFFS {
		return run("umount", bpffs)
	}
	if c.sharedBPFFS {
		return run("mount", "--make-private", bpffs)
	}
	return nil
}

func run(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %v: %v: %s", name, args, err, out)
	}
	return nil
}
