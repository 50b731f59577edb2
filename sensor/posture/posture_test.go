package posture

import (
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// hardened returns a spec that passes every check.
func hardened() *specs.Spec {
	caps := slices.Clone(dockerDefaultCaps)
	var ns []specs.LinuxNamespace
	for _, t := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.NetworkNamespace, specs.IPCNamespace,
		specs.UTSNamespace, specs.MountNamespace, specs.UserNamespace, specs.CgroupNamespace} {
		ns = append(ns, specs.LinuxNamespace{Type: t})
	}
	return &specs.Spec{
		Process: &specs.Process{
			User:            specs.User{UID: 1000, GID: 1000},
			NoNewPrivileges: true,
			Capabilities:    &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
		},
		Root: &specs.Root{Path: "rootfs", Readonly: true},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/etc/resolv.conf", Type: "bind", Source: "/var/lib/app/resolv.conf", Options: []string{"rbind", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces:    ns,
			UIDMappings:   []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}},
			GIDMappings:   []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}},
			MaskedPaths:   []string{"/proc/kcore"},
			ReadonlyPaths: []string{"/proc/sys"},
			Resources:     &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			Seccomp: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"read", "write"}, Action: specs.ActAllow}}},
		},
	}
}

func root(s *specs.Spec) { s.Process.User.UID = 0 }

func mount(src, dst string, opts ...string) func(*specs.Spec) {
	return func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts})
	}
}

func withoutNamespace(typ specs.LinuxNamespaceType) func(*specs.Spec) {
	return func(s *specs.Spec) {
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == typ })
	}
}

func joinNamespace(typ specs.LinuxNamespaceType, path string) func(*specs.Spec) {
	return func(s *specs.Spec) {
		for i := range s.Linux.Namespaces {
			if s.Linux.Namespaces[i].Type == typ {
				s.Linux.Namespaces[i].Path = path
			}
		}
	}
}

func addCaps(caps ...string) func(*specs.Spec) {
	return func(s *specs.Spec) {
		c := s.Process.Capabilities
		c.Bounding = append(c.Bounding, caps...)
		c.Effective = append(c.Effective, caps...)
	}
}

// allCaps are the capabilities a privileged container gets on a 6.x kernel.
var allCaps = []string{
	"CAP_AUDIT_CONTROL", "CAP_AUDIT_READ", "CAP_BLOCK_SUSPEND", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
	"CAP_DAC_READ_SEARCH", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_LEASE", "CAP_LINUX_IMMUTABLE",
	"CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE", "CAP_NET_ADMIN", "CAP_NET_BROADCAST", "CAP_PERFMON",
	"CAP_SYSLOG", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_MODULE", "CAP_SYS_NICE", "CAP_SYS_PACCT",
	"CAP_SYS_PTRACE", "CAP_SYS_RAWIO", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG",
	"CAP_WAKE_ALARM",
}

// privilegedAs applies what a runtime's privileged mode does: all
// capabilities, no masked or read-only paths, and then either or both of
// every device allowed and /sys writable.
func privilegedAs(devices, sysfs bool) func(*specs.Spec) {
	return func(s *specs.Spec) {
		addCaps(allCaps...)(s)
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
		if devices {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Access: "rwm"})
		}
		if sysfs {
			s.Mounts[1].Options = []string{"nosuid", "noexec", "nodev", "rw"}
		}
	}
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name   string
		mutate []func(*specs.Spec)
		opts   Options
		// want maps every check expected to fail to a part of its detail.
		want map[string]string
	}{
		{name: "hardened"},

		{name: "root", mutate: fs(root, withoutNamespace(specs.UserNamespace)),
			want: map[string]string{"4.1": "process runs as uid 0 (root)", "5.31": "no user namespace of its own"}},
		{name: "root in a user namespace", mutate: fs(root),
			want: map[string]string{"4.1": "uid 0 (root) inside a user namespace, mapped to host uid 100000"}},
		{name: "root in a user namespace joined by path", mutate: fs(root, joinNamespace(specs.UserNamespace, "/proc/42/ns/user")),
			want: map[string]string{"4.1": "uid 0 (root) inside a user namespace"}},
		{name: "root in the host's user namespace by path", mutate: fs(root, joinNamespace(specs.UserNamespace, "/proc/1/ns/user")),
			want: map[string]string{"4.1": "process runs as uid 0 (root)", "5.31": "joins the host's user namespace (/proc/1/ns/user)"}},

		{name: "default capabilities in short lower case", mutate: fs(func(s *specs.Spec) {
			s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"chown", "kill"}, Effective: []string{"net_raw"}}
		})},
		{name: "no capabilities", mutate: fs(func(s *specs.Spec) { s.Process.Capabilities = nil })},
		{name: "added capabilities", mutate: fs(addCaps("CAP_SYS_ADMIN", "CAP_NET_ADMIN")),
			want: map[string]string{"5.4": "2 beyond Docker's default set: CAP_NET_ADMIN, CAP_SYS_ADMIN"}},
		{name: "added ambient capability", mutate: fs(func(s *specs.Spec) { s.Process.Capabilities.Ambient = []string{"CAP_SYS_PTRACE"} }),
			want: map[string]string{"5.4": "1 beyond Docker's default set: CAP_SYS_PTRACE"}},

		{name: "privileged", mutate: fs(privilegedAs(true, true)),
			want: map[string]string{
				"5.4": "27 beyond Docker's default set: CAP_AUDIT_CONTROL, ",
				"5.5": "inferred from the spec: CAP_SYS_ADMIN among 41 capabilities, no masked or read-only paths, every device allowed, /sys writable",
			}},
		{name: "privileged with /sys read-only", mutate: fs(privilegedAs(true, false)),
			want: map[string]string{"5.4": "CAP_SYS_ADMIN", "5.5": "paths, every device allowed"}},
		{name: "privileged with the device cgroup kept", mutate: fs(privilegedAs(false, true)),
			want: map[string]string{"5.4": "CAP_SYS_ADMIN", "5.5": "paths, /sys writable"}},
		{name: "every device allowed, then denied", mutate: fs(privilegedAs(true, false), func(s *specs.Spec) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: false, Type: "a", Access: "rwm"})
		}), want: map[string]string{"5.4": "CAP_SYS_ADMIN"}},
		{name: "only char devices allowed", mutate: fs(privilegedAs(false, false), func(s *specs.Spec) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Access: "rwm"})
		}), want: map[string]string{"5.4": "CAP_SYS_ADMIN"}},
		{name: "every minor of one device class allowed", mutate: fs(privilegedAs(false, false), func(s *specs.Spec) {
			minor := int64(3)
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Minor: &minor, Access: "rwm"})
		}), want: map[string]string{"5.4": "CAP_SYS_ADMIN"}},
		{name: "all capabilities but masked paths kept", mutate: fs(privilegedAs(true, true), func(s *specs.Spec) {
			s.Linux.MaskedPaths = []string{"/proc/kcore"}
		}), want: map[string]string{"5.4": "CAP_SYS_ADMIN"}},
		{name: "unmasked, every device, but no CAP_SYS_ADMIN", mutate: fs(privilegedAs(true, true), func(s *specs.Spec) {
			c := s.Process.Capabilities
			for _, set := range []*[]string{&c.Bounding, &c.Effective} {
				*set = slices.DeleteFunc(*set, func(c string) bool { return c == "CAP_SYS_ADMIN" })
			}
		}), want: map[string]string{"5.4": "26 beyond"}},

		{name: "/etc read-only", mutate: fs(mount("/etc", "/host-etc", "rbind", "ro")),
			want: map[string]string{"5.6": "/etc at /host-etc (ro)"}},
		{name: "host root and /dev", mutate: fs(mount("/", "/host", "rbind"), mount("/dev", "/dev", "rbind", "rw")),
			want: map[string]string{
				"5.6":  "/ at /host (rw); /dev at /dev (rw)",
				"5.32": "/ at /host (rw), covering /run/containerd/containerd.sock and 9 more runtime socket paths",
			}},
		{name: "file below /etc", mutate: fs(mount("/etc/shadow", "/shadow", "rbind", "ro")),
			want: map[string]string{"5.6": "/etc/shadow at /shadow (ro)"}},
		{name: "unclean path below /usr", mutate: fs(mount("/usr//lib/../bin/", "/b", "bind")),
			want: map[string]string{"5.6": "/usr//lib/../bin/ at /b (rw)"}},
		{name: "/etc/hosts read-only", mutate: fs(mount("/etc/hosts", "/etc/hosts", "rbind", "ro"), mount("/usr/share/zoneinfo/UTC", "/etc/localtime", "bind", "ro"))},
		{name: "/etc/hosts writable", mutate: fs(mount("/etc/hosts", "/etc/hosts", "rbind", "ro", "rw")),
			want: map[string]string{"5.6": "/etc/hosts at /etc/hosts (rw)"}},
		{name: "data volumes", mutate: fs(mount("/var/lib/app", "/data", "rbind"), mount("/etcetera", "/x", "bind"), mount("/srv/usr", "/y", "bind"))},
		{name: "bind by option only", mutate: fs(func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/host-sys", Source: "/sys", Options: []string{"rbind", "ro"}})
		}), want: map[string]string{"5.6": "/sys at /host-sys (ro)"}},
		{name: "tmpfs over /etc", mutate: fs(func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/etc", Type: "tmpfs", Source: "/etc"})
		})},

		{name: "host network", mutate: fs(withoutNamespace(specs.NetworkNamespace)),
			want: map[string]string{"5.10": "no network namespace of its own: shares the host's"}},
		{name: "host network by path", mutate: fs(joinNamespace(specs.NetworkNamespace, "/proc/1/ns/net")),
			want: map[string]string{"5.10": "joins the host's network namespace (/proc/1/ns/net)"}},
		{name: "pod network", mutate: fs(joinNamespace(specs.NetworkNamespace, "/proc/4242/ns/net"))},
		{name: "host pid", mutate: fs(withoutNamespace(specs.PIDNamespace)),
			want: map[string]string{"5.16": "no pid namespace of its own"}},
		{name: "host pid by path", mutate: fs(joinNamespace(specs.PIDNamespace, "/proc/1/ns/pid")),
			want: map[string]string{"5.16": "joins the host's pid namespace"}},
		{name: "host ipc", mutate: fs(withoutNamespace(specs.IPCNamespace)),
			want: map[string]string{"5.17": "no ipc namespace of its own"}},
		{name: "host uts", mutate: fs(withoutNamespace(specs.UTSNamespace)),
			want: map[string]string{"5.21": "no uts namespace of its own"}},
		{name: "host uts by path", mutate: fs(joinNamespace(specs.UTSNamespace, "/proc/1/ns/uts")),
			want: map[string]string{"5.21": "joins the host's uts namespace"}},
		{name: "no user namespace", mutate: fs(withoutNamespace(specs.UserNamespace)),
			want: map[string]string{"5.31": "no user namespace of its own"}},

		{name: "writable root", mutate: fs(func(s *specs.Spec) { s.Root.Readonly = false }),
			want: map[string]string{"5.13": "the root filesystem is writable"}},
		{name: "no root", mutate: fs(func(s *specs.Spec) { s.Root = nil }),
			want: map[string]string{"5.13": "writable"}},

		{name: "no seccomp", mutate: fs(func(s *specs.Spec) { s.Linux.Seccomp = nil }),
			want: map[string]string{"5.22": "no seccomp profile"}},
		{name: "seccomp allowing everything", mutate: fs(func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
		}), want: map[string]string{"5.22": "the seccomp profile allows every system call"}},
		{name: "seccomp deny list", mutate: fs(func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"ptrace"}, Action: specs.ActErrno}}}
		})},

		{name: "new privileges", mutate: fs(func(s *specs.Spec) { s.Process.NoNewPrivileges = false }),
			want: map[string]string{"5.26": "noNewPrivileges is not set"}},

		{name: "docker socket", mutate: fs(mount("/var/run/docker.sock", "/var/run/docker.sock", "rbind")),
			want: map[string]string{"5.32": "/var/run/docker.sock at /var/run/docker.sock (rw)"}},
		{name: "containerd socket directory", mutate: fs(mount("/run/containerd", "/run/containerd", "rbind", "ro")),
			want: map[string]string{"5.32": "/run/containerd at /run/containerd (ro), covering /run/containerd/containerd.sock"}},
		{name: "/var/run", mutate: fs(mount("/var/run/", "/host-run", "rbind")),
			want: map[string]string{"5.32": "/var/run/ at /host-run (rw), covering /run/containerd/containerd.sock and 8 more"}},
		{name: "crio and podman sockets", mutate: fs(mount("/run/crio/crio.sock", "/crio.sock", "bind"), mount("/var/run/podman", "/podman", "bind")),
			want: map[string]string{"5.32": "/run/crio/crio.sock at /crio.sock (rw); /var/run/podman at /podman (rw), covering /run/podman/podman.sock"}},
		{name: "a directory below /run/containerd", mutate: fs(mount("/run/containerd/io.containerd.grpc.v1.cri/sandboxes/abc/shm", "/dev/shm", "rbind"))},
		{name: "socket named like docker's elsewhere", mutate: fs(mount("/home/u/docker.sock", "/docker.sock", "bind"))},
		{name: "configured socket", opts: Options{RuntimeSockets: []string{"", "/srv/k8s/containerd.sock"}},
			mutate: fs(mount("/srv/k8s", "/k8s", "rbind")),
			want:   map[string]string{"5.32": "/srv/k8s at /k8s (rw), covering /srv/k8s/containerd.sock"}},
		{name: "configured socket not given", mutate: fs(mount("/srv/k8s", "/k8s", "rbind"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := hardened()
			for _, m := range tt.mutate {
				m(s)
			}
			checkFindings(t, tt.opts.Evaluate(s), tt.want)
		})
	}
}

func fs(f ...func(*specs.Spec)) []func(*specs.Spec) { return f }

// checkFindings fails t unless got holds exactly the checks of want, in
// check order, each with the Check's title and severity and a detail
// containing want's text.
func checkFindings(t *testing.T, got []Finding, want map[string]string) {
	t.Helper()
	if got == nil {
		t.Fatal("Evaluate returned nil, want a non-nil slice")
	}
	var wantIDs, gotIDs []string
	for _, c := range Checks() {
		if _, ok := want[c.ID]; ok {
			wantIDs = append(wantIDs, c.ID)
		}
	}
	for _, f := range got {
		gotIDs = append(gotIDs, f.Check)
	}
	if !slices.Equal(gotIDs, wantIDs) {
		t.Fatalf("failed checks %v, want %v\nfindings: %+v", gotIDs, wantIDs, got)
	}
	checks := Checks()
	for _, f := range got {
		i := slices.IndexFunc(checks, func(c Check) bool { return c.ID == f.Check })
		if f.Title != checks[i].Title || f.Severity != checks[i].Severity {
			t.Errorf("finding %s: title %q severity %q, want %q %q", f.Check, f.Title, f.Severity, checks[i].Title, checks[i].Severity)
		}
		if !strings.Contains(f.Detail, want[f.Check]) || f.Detail == "" {
			t.Errorf("finding %s: detail %q, want it to contain %q", f.Check, f.Detail, want[f.Check])
		}
	}
}

func TestEvaluateNilSpec(t *testing.T) {
	got := Evaluate(nil)
	if len(got) != 1 || got[0].Check != CheckSpecUnknown || got[0].Severity != SeverityUnknown || got[0].Detail == "" {
		t.Fatalf("Evaluate(nil) = %+v, want one %q finding", got, CheckSpecUnknown)
	}
}

// An empty spec is what a runtime would run with no settings: as root, in
// the host's namespaces, writable, unconfined.
func TestEvaluateEmptySpec(t *testing.T) {
	checkFindings(t, Evaluate(&specs.Spec{}), map[string]string{
		"4.1":  "process runs as uid 0 (root)",
		"5.10": "no network namespace",
		"5.13": "writable",
		"5.16": "no pid namespace",
		"5.17": "no ipc namespace",
		"5.21": "no uts namespace",
		"5.22": "no seccomp profile",
		"5.26": "noNewPrivileges",
		"5.31": "no user namespace",
	})
}

func TestChecks(t *testing.T) {
	checks := Checks()
	var ids []string
	for _, c := range checks {
		ids = append(ids, c.ID)
		if c.Title == "" {
			t.Errorf("check %s: no title", c.ID)
		}
		if !slices.Contains([]string{SeverityHigh, SeverityMedium, SeverityLow}, c.Severity) {
			t.Errorf("check %s: severity %q", c.ID, c.Severity)
		}
	}
	// The benchmark's numbers and order.
	want := []string{"4.1", "5.4", "5.5", "5.6", "5.10", "5.13", "5.16", "5.17", "5.21", "5.22", "5.26", "5.31", "5.32"}
	if !slices.Equal(ids, want) {
		t.Errorf("checks %v, want %v", ids, want)
	}
	checks[0].ID = "changed"
	if Checks()[0].ID != "4.1" {
		t.Error("Checks shares its slice with the package")
	}
}
