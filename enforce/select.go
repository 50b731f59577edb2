package enforce

import (
	"path"
)

// Target is what the engine knows of a container when it matches policies.
type Target struct {
	// CgroupID is the container's cgroup v2 id: the key of its rules.
	CgroupID uint64
	ID       string
	Name     string
	// Image is the reference the container was created from; empty when
	// unknown (a container named from its cgroup path only).
	Image  string
	Labels map[string]string
	// PodNamespace is the Kubernetes namespace, empty outside Kubernetes.
	PodNamespace string
	// Privileged is true for a container with every capability and no
	// confinement of devices or kernel paths.
	Privileged bool
	// NetNS is the path of the container's network namespace
	// (/proc/PID/ns/net); empty when unknown.
	NetNS string
	// Root is the container's root filesystem, as the kernel knows it: the
	// read-only rule judges a write by the object it is to. Nil when
	// unknown: a read-only rule the kernel enforces then cannot apply.
	Root *RootFS
}

// RootFS is a container's root filesystem: the device of its filesystem
// (the kernel's encoding) and the directory of that filesystem that is the
// container's root ("/" for a filesystem of its own).
type RootFS struct {
	Dev  uint32
	Path string
	// Host is where the root is visible on the host ("" when it is not):
	// where userspace reads the container's files to judge a write the
	// kernel of the cgroup-only tier cannot.
	Host string
}

// Selects reports whether the policy selects t: every given selector field
// must match; an empty selector selects every container.
func (s Selector) Selects(t Target) bool {
	if len(s.Images) > 0 {
		img, err := ParseImage(t.Image)
		if err != nil || !anyMatch(s.Images, func(p string) bool { return newImageGlob(p).matches(img) }) {
			return false
		}
	}
	if len(s.Names) > 0 && !anyMatch(s.Names, func(p string) bool {
		ok, _ := path.Match(p, t.Name)
		return ok
	}) {
		return false
	}
	for k, v := range s.Labels {
		if got, ok := t.Labels[k]; !ok || got != v {
			return false
		}
	}
	if len(s.Namespaces) > 0 && !anyMatch(s.Namespaces, func(ns string) bool { return ns == t.PodNamespace }) {
		return false
	}
	return true
}

func anyMatch(patterns []string, match func(string) bool) bool {
	for _, p := range patterns {
		if match(p) {
			return true
		}
	}
	return false
}
