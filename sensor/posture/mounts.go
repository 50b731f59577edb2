package posture

import (
	"fmt"
	"path"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// sensitiveDirs are the host directories check 5.6 reports when bind
// mounted, themselves or anything below them; "/" counts only itself. Read
// only.
var sensitiveDirs = []string{
	"/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32",
	"/proc", "/root", "/sbin", "/sys", "/usr",
}

// harmlessReadOnly are files below sensitiveDirs that runtimes and users
// commonly share read-only with no risk worth a finding. Read only.
var harmlessReadOnly = []string{
	"/etc/hostname", "/etc/hosts", "/etc/localtime", "/etc/resolv.conf",
	"/etc/timezone", "/usr/share/zoneinfo",
}

// runtimeSockets are the well-known container runtime API sockets, under
// /run (a bind source under /var/run is read as /run). Read only.
var runtimeSockets = []string{
	"/run/containerd/containerd.sock",
	"/run/docker.sock",
	"/run/docker/containerd/containerd.sock",
	"/run/crio/crio.sock",
	"/run/podman/podman.sock",
	"/run/k3s/containerd/containerd.sock",
	"/run/cri-dockerd.sock",
	"/run/dockershim.sock",
	"/run/buildkit/buildkitd.sock",
	"/var/snap/microk8s/common/run/containerd.sock",
}

// sensitiveMounts is check 5.6.
func sensitiveMounts(s *specs.Spec, _ Options) string {
	var found []string
	for _, m := range s.Mounts {
		if !isBind(m) {
			continue
		}
		src := path.Clean(m.Source)
		if src != "/" && !slices.ContainsFunc(sensitiveDirs, func(d string) bool { return within(src, d) }) {
			continue
		}
		if readOnly(m) && slices.ContainsFunc(harmlessReadOnly, func(f string) bool { return within(src, f) }) {
			continue
		}
		found = append(found, describeMount(m))
	}
	return strings.Join(found, "; ")
}

// runtimeSocketMounts is check 5.32: a bind mount of a runtime's socket, or
// of a directory holding one, gives the container control of the runtime
// and so of the node.
func runtimeSocketMounts(s *specs.Spec, o Options) string {
	socks := slices.Clone(runtimeSockets)
	for _, sock := range o.RuntimeSockets {
		if sock != "" {
			socks = append(socks, hostPath(sock))
		}
	}
	var found []string
	for _, m := range s.Mounts {
		if !isBind(m) {
			continue
		}
		src := hostPath(m.Source)
		var held []string
		for _, sock := range socks {
			if within(sock, src) {
				held = append(held, sock)
			}
		}
		switch {
		case len(held) == 0:
		case len(held) == 1 && held[0] == src:
			found = append(found, describeMount(m))
		case len(held) == 1:
			found = append(found, fmt.Sprintf("%s, covering %s", describeMount(m), held[0]))
		default:
			found = append(found, fmt.Sprintf("%s, covering %s and %d more runtime socket paths", describeMount(m), held[0], len(held)-1))
		}
	}
	return strings.Join(found, "; ")
}

// writableRoot is check 5.13.
func writableRoot(s *specs.Spec, _ Options) string {
	if s.Root != nil && s.Root.Readonly {
		return ""
	}
	return "the root filesystem is writable"
}

// isBind reports whether m mounts a host path.
func isBind(m specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

// readOnly reports whether m is mounted read-only: the last of its "ro" and
// "rw" options wins, as for mount(8).
func readOnly(m specs.Mount) bool {
	ro := false
	for _, o := range m.Options {
		switch o {
		case "ro":
			ro = true
		case "rw":
			ro = false
		}
	}
	return ro
}

// describeMount says which host path m mounts where, and how.
func describeMount(m specs.Mount) string {
	mode := "rw"
	if readOnly(m) {
		mode = "ro"
	}
	return fmt.Sprintf("%s at %s (%s)", m.Source, m.Destination, mode)
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// hostPath cleans p and reads /var/run as /run, which it links to on every
// current distribution.
func hostPath(p string) string {
	p = path.Clean(p)
	if rest, ok := strings.CutPrefix(p, "/var/run"); ok && (rest == "" || rest[0] == '/') {
		return "/run" + rest
	}
	return p
}
