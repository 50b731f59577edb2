package container

import (
	"strings"
	"testing"
)

func TestIDFromCgroupPath(t *testing.T) {
	const (
		id  = "3f0b5a1c9d2e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8"
		uid = "5d2c7f4e-8a1b-4c3d-9e0f-123456789abc"
	)
	uidSD := strings.ReplaceAll(uid, "-", "_")

	tests := []struct {
		name        string
		path        string
		wantID      string
		wantRuntime string
	}{
		// containerd's own layout, as ctr and other plain clients get it.
		{name: "ctr default namespace", path: "/default/web-1", wantID: "web-1", wantRuntime: RuntimeContainerd},
		{name: "ctr other namespace", path: "/buildkit/x1.y_z-2", wantID: "x1.y_z-2", wantRuntime: RuntimeContainerd},
		{name: "ctr proc line", path: "0::/default/web-1", wantID: "web-1", wantRuntime: RuntimeContainerd},
		{name: "ctr absolute hybrid", path: "/sys/fs/cgroup/unified/default/web-1", wantID: "web-1", wantRuntime: RuntimeContainerd},
		{name: "ctr absolute v2", path: "/sys/fs/cgroup/default/web-1", wantID: "web-1", wantRuntime: RuntimeContainerd},
		{name: "ctr trailing newline", path: "/default/web-1\n", wantID: "web-1", wantRuntime: RuntimeContainerd},

		// Kubernetes with the CRI plugin, systemd driver, each QoS class.
		{name: "cri-containerd systemd burstable", path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSD + ".slice/cri-containerd-" + id + ".scope", wantID: id, wantRuntime: RuntimeContainerd},
		{name: "cri-containerd systemd besteffort", path: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidSD + ".slice/cri-containerd-" + id + ".scope", wantID: id, wantRuntime: RuntimeContainerd},
		{name: "cri-containerd systemd guaranteed", path: "/kubepods.slice/kubepods-pod" + uidSD + ".slice/cri-containerd-" + id + ".scope", wantID: id, wantRuntime: RuntimeContainerd},
		// The cgroupfs driver: the id alone below the pod.
		{name: "cgroupfs burstable", path: "/kubepods/burstable/pod" + uid + "/" + id, wantID: id, wantRuntime: RuntimeKubernetes},
		{name: "cgroupfs besteffort", path: "/kubepods/besteffort/pod" + uid + "/" + id, wantID: id, wantRuntime: RuntimeKubernetes},
		{name: "cgroupfs guaranteed", path: "/kubepods/pod" + uid + "/" + id, wantID: id, wantRuntime: RuntimeKubernetes},
		{name: "cgroupfs static pod", path: "/kubepods/burstable/pod0123456789abcdef0123456789abcdef/" + id, wantID: id, wantRuntime: RuntimeKubernetes},
		{name: "cgroupfs v1 proc line", path: "11:memory:/kubepods/burstable/pod" + uid + "/" + id, wantID: id, wantRuntime: RuntimeKubernetes},
		{name: "kubelet under a node cgroup", path: "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod" + uidSD + ".slice/cri-containerd-" + id + ".scope", wantID: id, wantRuntime: RuntimeContainerd},

		// Docker.
		{name: "docker cgroupfs", path: "/docker/" + id, wantID: id, wantRuntime: RuntimeDocker},
		{name: "docker systemd", path: "/system.slice/docker-" + id + ".scope", wantID: id, wantRuntime: RuntimeDocker},
		{name: "docker v1 absolute", path: "/sys/fs/cgroup/memory/docker/" + id, wantID: id, wantRuntime: RuntimeDocker},
		{name: "docker v1 comounted", path: "/sys/fs/cgroup/cpu,cpuacct/docker/" + id, wantID: id, wantRuntime: RuntimeDocker},
		{name: "docker v1 proc line", path: "4:memory:/docker/" + id, wantID: id, wantRuntime: RuntimeDocker},
		{name: "docker v1 named hierarchy", path: "1:name=systemd:/docker/" + id, wantID: id, wantRuntime: RuntimeDocker},
		{name: "docker in kubernetes", path: "/kubepods.slice/kubepods-pod" + uidSD + ".slice/docker-" + id + ".scope", wantID: id, wantRuntime: RuntimeDocker},
		{name: "docker in docker, inner wins", path: "/docker/" + strings.Repeat("a", 64) + "/docker/" + id, wantID: id, wantRuntime: RuntimeDocker},
		{name: "sub-cgroup of a container", path: "/system.slice/docker-" + id + ".scope/init.scope", wantID: id, wantRuntime: RuntimeDocker},

		// CRI-O.
		{name: "crio systemd", path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSD + ".slice/crio-" + id + ".scope", wantID: id, wantRuntime: RuntimeCRIO},
		{name: "crio cgroupfs", path: "/kubepods/besteffort/pod" + uid + "/crio-" + id, wantID: id, wantRuntime: RuntimeCRIO},
		{name: "crio conmon", path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSD + ".slice/crio-conmon-" + id + ".scope"},

		// Podman.
		{name: "podman systemd", path: "/machine.slice/libpod-" + id + ".scope", wantID: id, wantRuntime: RuntimePodman},
		{name: "podman nested container cgroup", path: "/machine.slice/libpod-" + id + ".scope/container", wantID: id, wantRuntime: RuntimePodman},
		{name: "podman rootless", path: "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope", wantID: id, wantRuntime: RuntimePodman},
		{name: "podman cgroupfs", path: "/libpod_parent/libpod-" + id, wantID: id, wantRuntime: RuntimePodman},
		{name: "podman conmon", path: "/machine.slice/libpod-conmon-" + id + ".scope"},

		// Host cgroups.
		{name: "root", path: "/"},
		{name: "empty", path: ""},
		{name: "root proc line", path: "0::/"},
		{name: "user session", path: "/user.slice/user-1000.slice/session-3.scope"},
		{name: "user slice", path: "/user.slice/user-1000.slice"},
		{name: "system service", path: "/system.slice/sshd.service"},
		{name: "containerd itself", path: "/system.slice/containerd.service"},
		{name: "init scope", path: "/init.scope"},
		{name: "kubepods qos", path: "/kubepods/besteffort"},
		{name: "kubepods pod", path: "/kubepods/burstable/pod" + uid},
		{name: "kubepods systemd pod", path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSD + ".slice"},
		{name: "docker parent", path: "/docker"},
		{name: "short hex below docker", path: "/docker/3f0b5a1c9d2e"},
		{name: "uppercase hex", path: "/docker/" + strings.ToUpper(id)},
		{name: "docker scope without id", path: "/system.slice/docker-foo.scope"},
		{name: "one level", path: "/ringfence"},
		{name: "three levels", path: "/default/web-1/child"},
		{name: "bad namespace name", path: "/de fault/web-1"},
		{name: "v1 hierarchy root", path: "/sys/fs/cgroup/memory"},
		{name: "lxc payload", path: "/lxc.payload.c1/init"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotID, gotRuntime, ok := IDFromCgroupPath(tt.path)
			if wantOK := tt.wantID != ""; ok != wantOK || gotID != tt.wantID || gotRuntime != tt.wantRuntime {
				t.Errorf("IDFromCgroupPath(%q) = %q, %q, %v; want %q, %q, %v",
					tt.path, gotID, gotRuntime, ok, tt.wantID, tt.wantRuntime, wantOK)
			}
		})
	}
}

func TestIsName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{name: "simple", in: "default", want: true},
		{name: "separators", in: "a.b_c-d", want: true},
		{name: "empty", in: ""},
		{name: "leading separator", in: "-a"},
		{name: "trailing separator", in: "a-"},
		{name: "double separator", in: "a--b"},
		{name: "space", in: "a b"},
		{name: "at limit", in: strings.Repeat("a", maxNameLen), want: true},
		{name: "over limit", in: strings.Repeat("a", maxNameLen+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isName(tt.in); got != tt.want {
				t.Errorf("isName(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
