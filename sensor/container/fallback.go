package container

import "github.com/ringfence/ringfence/sensor/hostfs"

// Fallback names the container in a cgroup from the cgroup's path alone, for
// when the runtime API is down or does not know it: the Info holds the ID
// (also as Name), the Runtime the path's layout points to, CgroupID and
// CgroupPath. path is relative to the cgroup2 mount cgroup2; when empty, the
// tree is walked for cgroupID, which costs one stat per cgroup. When
// cgroupID is 0 it is read from path. ok is false for a cgroup that is no
// container's. Fallback does I/O: keep it off the event hot path.
func Fallback(cgroup2 string, cgroupID uint64, path string) (info Info, ok bool, err error) {
	if path == "" {
		if path, err = hostfs.FindCgroup(cgroup2, cgroupID); err != nil {
			return Info{}, false, err
		}
	}
	if cgroupID == 0 {
		if cgroupID, err = hostfs.CgroupID(cgroup2, path); err != nil {
			return Info{}, false, err
		}
	}
	id, runtime, ok := IDFromCgroupPath(path)
	if !ok {
		return Info{}, false, nil
	}
	return Info{ID: id, Name: id, Runtime: runtime, CgroupID: cgroupID, CgroupPath: path}, true, nil
}

// FallbackForPid is Fallback for the cgroup pid is in, read from
// /proc/<pid>/cgroup below procRoot; the Info also holds Pid.
func FallbackForPid(cgroup2, procRoot string, pid uint32) (info Info, ok bool, err error) {
	path, err := hostfs.CgroupOfPid(procRoot, pid)
	if err != nil {
		return Info{}, false, err
	}
	info, ok, err = Fallback(cgroup2, 0, path)
	info.Pid = pid
	if !ok {
		info = Info{}
	}
	return info, ok, err
}
