package container

import (
	"strings"
)

// Runtimes as IDFromCgroupPath and the Watcher name them.
const (
	RuntimeContainerd = "containerd"
	RuntimeDocker     = "docker"
	RuntimeCRIO       = "cri-o"
	RuntimePodman     = "podman"
	// RuntimeKubernetes is a pod's container under the cgroupfs driver,
	// whose path does not say which CRI runtime made it.
	RuntimeKubernetes = "kubernetes"
)

// maxNameLen is containerd's limit on namespace and container names.
const maxNameLen = 76

// IDFromCgroupPath extracts a container id from a cgroup path and names the
// runtime whose layout it follows. It accepts a path relative to a cgroup
// mount, an absolute path under /sys/fs/cgroup (v1 or v2) and a line of
// /proc/PID/cgroup. It does no I/O.
//
// Paths of the kind "/<namespace>/<id>", which containerd's default layout
// gives containers that ctr or another plain client starts, cannot be told
// from any other two-level cgroup with such names; they match when neither
// level looks like a systemd unit or a known host hierarchy.
func IDFromCgroupPath(path string) (id, runtime string, ok bool) {
	comps := components(path)
	// The deepest match wins: a container may create cgroups below its own,
	// and runtimes nest (Docker in Docker).
	for i := len(comps) - 1; i >= 0; i-- {
		if id, runtime, ok := matchScope(comps[i]); ok {
			return id, runtime, ok
		}
		if i == 0 || !isHexID(comps[i]) {
			continue
		}
		switch parent := comps[i-1]; {
		case parent == "docker":
			return comps[i], RuntimeDocker, true
		case isPodDir(parent):
			return comps[i], RuntimeKubernetes, true
		}
	}
	if len(comps) == 2 && isCtrNamespace(comps[0]) && isName(comps[1]) && !isUnit(comps[1]) {
		return comps[1], RuntimeContainerd, true
	}
	return "", "", false
}

// components splits path into its cgroup levels below the hierarchy root.
func components(path string) []string {
	path = strings.TrimSpace(path)
	// "4:memory:/docker/<id>" or "0::/default/<id>".
	if f := strings.SplitN(path, ":", 3); len(f) == 3 && isDigits(f[0]) {
		path = f[2]
	}
	if rest, ok := strings.CutPrefix(path, "/sys/fs/cgroup/"); ok {
		path = rest
		first, below, _ := strings.Cut(path, "/")
		if isHierarchy(first) {
			path = below
		}
	}
	var comps []string
	for _, c := range strings.Split(path, "/") {
		if c != "" && c != "." {
			comps = append(comps, c)
		}
	}
	return comps
}

// matchScope recognises "<prefix><64 hex>[.scope]": the container cgroups
// runtimes create under the systemd cgroup driver and, for CRI-O and Podman,
// as plain directories too. The conmon monitors sit next to their container
// in a cgroup of their own and are not containers; their prefixes come first.
func matchScope(c string) (id, runtime string, ok bool) {
	prefixes := [...]struct{ prefix, runtime string }{
		{"crio-conmon-", ""},
		{"libpod-conmon-", ""},
		{"cri-containerd-", RuntimeContainerd},
		{"docker-", RuntimeDocker},
		{"crio-", RuntimeCRIO},
		{"libpod-", RuntimePodman},
	}
	name := strings.TrimSuffix(c, ".scope")
	for _, p := range prefixes {
		rest, found := strings.CutPrefix(name, p.prefix)
		if !found {
			continue
		}
		if p.runtime == "" || !isHexID(rest) {
			return "", "", false
		}
		return rest, p.runtime, true
	}
	return "", "", false
}

// isPodDir recognises a pod's cgroup: "pod<uid>" under the cgroupfs driver,
// "kubepods[-<qos>]-pod<uid>.slice" under systemd (uid dashes become "_").
// Static pods have a hash for uid, so any hex with separators passes.
func isPodDir(c string) bool {
	c = strings.TrimSuffix(c, ".slice")
	i := strings.LastIndex(c, "pod")
	if i < 0 || (i > 0 && c[i-1] != '-') {
		return false
	}
	uid := c[i+len("pod"):]
	if len(uid) < 8 {
		return false
	}
	for _, r := range uid {
		if !isHex(r) && r != '-' && r != '_' {
			return false
		}
	}
	return true
}

// isCtrNamespace reports whether c can be a containerd namespace holding
// containers at the top of the hierarchy.
func isCtrNamespace(c string) bool {
	if !isName(c) || isUnit(c) || strings.HasPrefix(c, "kubepods") || strings.HasPrefix(c, "lxc.") {
		return false
	}
	switch c {
	case "docker", "libpod_parent", "machine", "lxc":
		// Other runtimes' parents, never a namespace.
		return false
	}
	return true
}

// isHierarchy reports whether a directory under /sys/fs/cgroup holds a
// hierarchy rather than being a cgroup: a v1 controller (or a comounted
// pair), a named hierarchy or the hybrid layout's unified mount.
func isHierarchy(c string) bool {
	switch c {
	case "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory", "misc",
		"net_cls", "net_prio", "perf_event", "pids", "rdma", "systemd", "unified":
		return true
	}
	return strings.Contains(c, ",") || strings.HasPrefix(c, "name=")
}

// isUnit reports whether c is named like a systemd unit.
func isUnit(c string) bool {
	for _, s := range [...]string{".slice", ".scope", ".service", ".socket", ".mount", ".swap", ".target", ".device"} {
		if strings.HasSuffix(c, s) {
			return true
		}
	}
	return false
}

// isName checks containerd's identifier syntax: alphanumeric runs joined by
// single '.', '_' or '-', at most maxNameLen long.
func isName(c string) bool {
	if c == "" || len(c) > maxNameLen {
		return false
	}
	sep := true // no separator first, nor two in a row
	for _, r := range c {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			sep = false
		case r == '.' || r == '_' || r == '-':
			if sep {
				return false
			}
			sep = true
		default:
			return false
		}
	}
	return !sep
}

// isHexID reports whether c is a 64-digit lowercase hex id, as Docker,
// CRI-O, Podman and the CRI plugin generate.
func isHexID(c string) bool {
	if len(c) != 64 {
		return false
	}
	for _, r := range c {
		if !isHex(r) {
			return false
		}
	}
	return true
}

func isHex(r rune) bool { return r >= '0' && r <= '9' || r >= 'a' && r <= 'f' }

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
