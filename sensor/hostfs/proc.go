package hostfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CgroupOfPid returns the cgroup v2 path of pid, relative to the cgroup2
// mount, from the "0::" line of /proc/<pid>/cgroup below procRoot. It is
// relative to the reader's cgroup namespace: the sensor must run in the
// host's.
func CgroupOfPid(procRoot string, pid uint32) (string, error) {
	b, err := os.ReadFile(procPath(procRoot, pid, "cgroup"))
	if err != nil {
		return "", err
	}
	return parseProcCgroup(string(b))
}

func procPath(procRoot string, pid uint32, file string) string {
	return filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10), file)
}

// parseProcCgroup picks the cgroup v2 path from /proc/<pid>/cgroup content.
func parseProcCgroup(content string) (string, error) {
	for _, line := range strings.Split(content, "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			if strings.HasSuffix(path, " (deleted)") {
				return "", fmt.Errorf("cgroup %s: deleted", strings.TrimSuffix(path, " (deleted)"))
			}
			return path, nil
		}
	}
	return "", errors.New("no cgroup v2 entry in /proc/<pid>/cgroup")
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times; Linux fixes it
// at 100 for user space.
const clockTicks = 100

// ProcStat returns the fields of /proc/<pid>/stat below procRoot from the
// third on (state, ppid, ...): the command name, field 2, may hold spaces
// and parentheses, so the fields are counted after its last ')'.
func ProcStat(procRoot string, pid uint32) ([]string, error) {
	stat, err := os.ReadFile(procPath(procRoot, pid, "stat"))
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return nil, errors.New("malformed /proc/<pid>/stat")
	}
	return strings.Fields(string(stat[i+1:])), nil
}

// Stopped reports whether pid is stopped (state T).
func Stopped(procRoot string, pid uint32) bool {
	f, err := ProcStat(procRoot, pid)
	return err == nil && len(f) > 0 && f[0] == "T"
}

// ProcessStart returns when pid started, from its start time in clock ticks
// since boot and the boot time in /proc/stat.
func ProcessStart(procRoot string, pid uint32) (time.Time, error) {
	f, err := ProcStat(procRoot, pid)
	if err != nil {
		return time.Time{}, err
	}
	const starttime = 22 - 3 // starttime is field 22; f starts at field 3
	if len(f) <= starttime {
		return time.Time{}, errors.New("short /proc/<pid>/stat")
	}
	ticks, err := strconv.ParseUint(f[starttime], 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("/proc/<pid>/stat starttime: %w", err)
	}
	boot, err := bootTime(procRoot)
	if err != nil {
		return time.Time{}, err
	}
	return boot.Add(time.Duration(ticks) * time.Second / clockTicks), nil
}

// bootTime reads the btime line of /proc/stat.
func bootTime(procRoot string) (time.Time, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "stat"))
	if err != nil {
		return time.Time{}, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("/proc/stat btime: %w", err)
			}
			return time.Unix(sec, 0), nil
		}
	}
	return time.Time{}, errors.New("no btime in /proc/stat")
}

// Process is what /proc says of a process's program and credentials.
type Process struct {
	PPID     uint32
	UID, GID uint32
	Comm     string
	// Exe is the executed file, Args the command line.
	Exe  string
	Args []string
}

// ReadProcess reads pid's entry below procRoot. Fields /proc could not
// give (the process is gone meanwhile) stay empty.
func ReadProcess(procRoot string, pid uint32) Process {
	var p Process
	if f, err := ProcStat(procRoot, pid); err == nil && len(f) > 1 {
		if ppid, err := parseUint32(f[1]); err == nil {
			p.PPID = ppid
		}
	}
	if b, err := os.ReadFile(procPath(procRoot, pid, "comm")); err == nil {
		p.Comm = strings.TrimSuffix(string(b), "\n")
	}
	if exe, err := os.Readlink(procPath(procRoot, pid, "exe")); err == nil {
		p.Exe = exe
	}
	if b, err := os.ReadFile(procPath(procRoot, pid, "cmdline")); err == nil && len(b) > 0 {
		p.Args = strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	}
	if b, err := os.ReadFile(procPath(procRoot, pid, "status")); err == nil {
		p.UID = statusID(string(b), "Uid:")
		p.GID = statusID(string(b), "Gid:")
	}
	return p
}

// statusID returns the real id on the line of /proc/<pid>/status that
// starts with field ("Uid:" or "Gid:"), or 0.
func statusID(status, field string) uint32 {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			if f := strings.Fields(v); len(f) > 0 {
				if n, err := parseUint32(f[0]); err == nil {
					return n
				}
			}
		}
	}
	return 0
}

func parseUint32(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}

// MountNS names the mount namespace of pid ("mnt:[inode]").
func MountNS(procRoot string, pid uint32) (string, error) {
	return os.Readlink(procPath(procRoot, pid, "ns/mnt"))
}

// HostMountNS names the mount namespace whose paths the host's mount table
// (init's) gives: init's, or, where init's namespaces cannot be read (a
// machine whose init is not dumpable), the reader's own, which then must
// be the host's.
func HostMountNS(procRoot string) (string, error) {
	if ns, err := MountNS(procRoot, 1); err == nil {
		return ns, nil
	}
	return os.Readlink(filepath.Join(procRoot, "self", "ns", "mnt"))
}
