package posture

import (
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// dockerDefaultCaps is the capability set Docker (and containerd) gives a
// container that asks for none: check 5.4 reports any other. Read only.
var dockerDefaultCaps = []string{
	"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_MKNOD", "CAP_NET_BIND_SERVICE",
	"CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
	"CAP_SETUID", "CAP_SYS_CHROOT",
}

// runsAsRoot is check 4.1. Root inside a user namespace is still reported,
// the detail naming the host uid it maps to: it is root over the
// container's own files and namespaces.
func runsAsRoot(s *specs.Spec, _ Options) string {
	if process(s).User.UID != 0 {
		return ""
	}
	l := linux(s)
	if sharedNamespace(l, specs.UserNamespace) != "" {
		return "process runs as uid 0 (root)"
	}
	if host, ok := hostID(l.UIDMappings, 0); ok {
		return fmt.Sprintf("process runs as uid 0 (root) inside a user namespace, mapped to host uid %d", host)
	}
	return "process runs as uid 0 (root) inside a user namespace"
}

// hostID maps a container id to the host through a user namespace's id
// mappings.
func hostID(mappings []specs.LinuxIDMapping, id uint32) (uint32, bool) {
	for _, m := range mappings {
		if id >= m.ContainerID && id-m.ContainerID < m.Size {
			return m.HostID + (id - m.ContainerID), true
		}
	}
	return 0, false
}

// addedCapabilities is check 5.4.
func addedCapabilities(s *specs.Spec, _ Options) string {
	var extra []string
	for _, c := range capabilities(process(s).Capabilities) {
		if !slices.Contains(dockerDefaultCaps, c) {
			extra = append(extra, c)
		}
	}
	if len(extra) == 0 {
		return ""
	}
	return fmt.Sprintf("%d beyond Docker's default set: %s", len(extra), strings.Join(extra, ", "))
}

// capabilities returns every capability in any of c's sets, named CAP_X,
// sorted. The bounding set caps what a process can ever hold, but the
// others are included in case a spec sets them wider.
func capabilities(c *specs.LinuxCapabilities) []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient} {
		for _, name := range set {
			name = strings.ToUpper(name)
			if !strings.HasPrefix(name, "CAP_") {
				name = "CAP_" + name
			}
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// newPrivileges is check 5.26.
func newPrivileges(s *specs.Spec, _ Options) string {
	if process(s).NoNewPrivileges {
		return ""
	}
	return "noNewPrivileges is not set: setuid binaries and file capabilities can raise privileges"
}
