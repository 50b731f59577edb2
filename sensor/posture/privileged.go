package posture

import (
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// privileged is check 5.5. An OCI spec has no "privileged" flag: runtimes
// expand it (docker --privileged, ctr --privileged, a Kubernetes privileged
// securityContext) into all capabilities, no masked or read-only /proc
// paths, every device allowed and a writable /sys. A container is taken as
// privileged when it holds CAP_SYS_ADMIN, has no masked or read-only paths,
// and either may use every device or has /sys writable: CAP_SYS_ADMIN alone
// is an added capability (5.4), not privileged mode.
func privileged(s *specs.Spec, _ Options) string {
	caps := capabilities(process(s).Capabilities)
	if !slices.Contains(caps, "CAP_SYS_ADMIN") {
		return ""
	}
	l := linux(s)
	if len(l.MaskedPaths) > 0 || len(l.ReadonlyPaths) > 0 {
		return ""
	}
	devices, sysfs := allDevicesAllowed(l), writableSysfs(s.Mounts)
	if !devices && !sysfs {
		return ""
	}
	why := []string{
		fmt.Sprintf("CAP_SYS_ADMIN among %d capabilities", len(caps)),
		"no masked or read-only paths",
	}
	if devices {
		why = append(why, "every device allowed")
	}
	if sysfs {
		why = append(why, "/sys writable")
	}
	return "inferred from the spec: " + strings.Join(why, ", ")
}

// allDevicesAllowed reports whether the device cgroup lets the container
// use every device: the last rule covering all devices is an allow of rwm.
// Rules apply in order, so a later deny-all would undo an earlier allow.
func allDevicesAllowed(l specs.Linux) bool {
	if l.Resources == nil {
		return false
	}
	allowed := false
	for _, d := range l.Resources.Devices {
		if (d.Type != "" && d.Type != "a") || d.Major != nil || d.Minor != nil {
			continue
		}
		if !d.Allow {
			allowed = false
			continue
		}
		allowed = d.Access == "" || (strings.Contains(d.Access, "r") && strings.Contains(d.Access, "w") && strings.Contains(d.Access, "m"))
	}
	return allowed
}

// writableSysfs reports whether /sys is mounted read-write.
func writableSysfs(mounts []specs.Mount) bool {
	for _, m := range mounts {
		if m.Type == "sysfs" && !readOnly(m) {
			return true
		}
	}
	return false
}

// Privileged reports whether the spec describes a privileged container, by
// the inference of check 5.5; the denyPrivileged rule uses the same one.
// A nil spec is not known to be privileged.
func Privileged(s *specs.Spec) bool {
	return s != nil && privileged(s, Options{}) != ""
}
