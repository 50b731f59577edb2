package sensor

import (
	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/hostfs"
	"github.com/ringfence/ringfence/sensor/violation"
)

// hostMountinfo is the host's mount table: init's, whatever mount namespace
// the sensor itself runs in.
const hostMountinfo = "/proc/1/mountinfo"

// rootOf finds a container's root filesystem, for the read-only rule: the
// mount its runtime made for it on the host (the object, whatever its
// processes did since), else the root of the mount namespace of pid, a
// process of it read while the container's own code has not run (its
// first exec is held).
func (s *Sensor) rootOf(info container.Info, pid uint32) *enforce.RootFS {
	r, ok, err := hostfs.RootOfBundle(hostMountinfo, info.RuntimeNamespace, info.ID)
	if err != nil || !ok {
		if pid == 0 {
			return nil
		}
		if r, err = hostfs.RootOfProcess("/proc", pid); err != nil {
			s.cfg.Logger.Warn("root filesystem of a container", "container", info.ID, "error", err)
			return nil
		}
		r = hostfs.OnHost(hostMountinfo, r)
	}
	return &enforce.RootFS{Dev: r.Dev, Path: r.Root, Host: r.Host}
}

// locate finds, for the userspace judgement of the cgroup-only tier, the
// object a path of e names: the container whose root filesystem holds it
// and its path from that root, resolved as the kernel would (hostfs
// Canonical) through the container's root as the host sees it.
func (s *Sensor) locate(e *event.Event) violation.Locate {
	return func(p string, follow bool) (uint64, string, bool) {
		cg := s.containerCgroup(e.CgroupID)
		root, ok := s.engine.Root(cg)
		if !ok || root.Host == "" || s.inHostMountNS(e.PID, p, root.Host) {
			// A path of the host's mount namespace: the object is on a
			// container's root filesystem if its device is.
			hp := hostfs.Canonical("/", p, follow)
			owner, rel, ok := s.engine.RootHolding(hp)
			if !ok {
				return 0, "", false
			}
			if r, ok := s.engine.Root(owner); ok {
				if dev, known := hostfs.DevOfNearest(hp); known && dev != r.Dev {
					return 0, "", false // another filesystem mounted below the root
				}
			}
			return owner, rel, true
		}
		c := hostfs.Canonical(root.Host, p, follow)
		if s.underVolume(cg, c) {
			return 0, "", false
		}
		return cg, c, true
	}
}

// containerCgroup returns the container cgroup the cgroup cg belongs to
// (cg itself without container identities).
func (s *Sensor) containerCgroup(cg uint64) uint64 {
	if s.identity != nil {
		return s.identity.ContainerCgroup(cg)
	}
	return cg
}

// inHostMountNS reports whether process pid is in the mount namespace of
// the host's paths (hostfs.HostMountNS). Once the process is gone, a path
// below its container's root as the host sees it is taken as one.
func (s *Sensor) inHostMountNS(pid uint32, p, rootHost string) bool {
	ns, err := hostfs.MountNS("/proc", pid)
	if err == nil {
		return s.hostMountNS != "" && ns == s.hostMountNS
	}
	_, below := hostfs.Below(p, rootHost)
	return below
}

// underVolume reports whether p (from the container's root) is at or below
// one of the container's mounts but its root: a volume, /proc, /dev...
func (s *Sensor) underVolume(cgroup uint64, p string) bool {
	for _, m := range s.mountPoints(cgroup) {
		if _, in := hostfs.Below(p, m); in && m != "/" {
			return true
		}
	}
	return false
}
