package posture

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// nsFile names each namespace type's file in /proc/PID/ns.
var nsFile = map[specs.LinuxNamespaceType]string{
	specs.NetworkNamespace: "net",
	specs.PIDNamespace:     "pid",
	specs.IPCNamespace:     "ipc",
	specs.UTSNamespace:     "uts",
	specs.UserNamespace:    "user",
	specs.MountNamespace:   "mnt",
	specs.CgroupNamespace:  "cgroup",
}

// hostNamespace returns the check that a container has a namespace of type
// typ apart from the host's: 5.10, 5.16, 5.17, 5.21 and 5.31.
func hostNamespace(typ specs.LinuxNamespaceType) func(*specs.Spec, Options) string {
	return func(s *specs.Spec, _ Options) string {
		return sharedNamespace(linux(s), typ)
	}
}

// sharedNamespace says why l shares the host's namespace of type typ, or
// returns "" when the container has one of its own. A namespace joined by
// path counts as the host's only when the path is init's (/proc/1/ns/...):
// any other path, such as a pod sandbox's, is taken as not the host's.
func sharedNamespace(l specs.Linux, typ specs.LinuxNamespaceType) string {
	for _, ns := range l.Namespaces {
		if ns.Type != typ {
			continue
		}
		if ns.Path == "/proc/1/ns/"+nsFile[typ] {
			return fmt.Sprintf("joins the host's %s namespace (%s)", typ, ns.Path)
		}
		return ""
	}
	return fmt.Sprintf("no %s namespace of its own: shares the host's", typ)
}

// seccompDisabled is check 5.22.
func seccompDisabled(s *specs.Spec, _ Options) string {
	sc := linux(s).Seccomp
	switch {
	case sc == nil:
		return "no seccomp profile: every system call is allowed"
	case sc.DefaultAction == specs.ActAllow && len(sc.Syscalls) == 0:
		return "the seccomp profile allows every system call"
	}
	return ""
}
