package container

import (
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ringfence/ringfence/sensor/event"
)

// Kubernetes metadata, as CRI runtimes set it on containers (labels) and in
// the OCI spec (annotations).
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
	annotSandboxName   = "io.kubernetes.cri.sandbox-name"
	annotSandboxNS     = "io.kubernetes.cri.sandbox-namespace"
	annotContainerName = "io.kubernetes.cri.container-name"
	labelNerdctlName   = "nerdctl/name"
)

// Info describes one container. Values handed out by a Cache share Labels and
// Spec with it: treat them as read only.
type Info struct {
	// ID is the runtime's container id.
	ID string
	// Name is the human name: the Kubernetes container name where there is
	// one, else the ID.
	Name string
	// RuntimeNamespace is the containerd namespace ("k8s.io" under Kubernetes).
	RuntimeNamespace string
	// Runtime names what runs the container: RuntimeContainerd, ... .
	Runtime string
	// Image is the image reference the container was created from.
	Image string
	// ImageDigest is the digest of that image's manifest or index, when the
	// runtime knows the image.
	ImageDigest string
	// Labels are the container's runtime labels.
	Labels map[string]string
	// Pod and PodNamespace name the Kubernetes pod, if any.
	Pod          string
	PodNamespace string
	// Pid is the host pid of the container's init process.
	Pid uint32
	// CgroupID is the inode of the container's cgroup v2 directory: the
	// cgroup_id events carry.
	CgroupID uint64
	// CgroupPath is that directory, relative to the cgroup2 mount.
	CgroupPath string
	// Spec is the container's OCI runtime spec, nil when unknown.
	Spec *specs.Spec
	// WatchedSince is when the sensor first knew the container: set by the
	// Cache when the container enters it, kept across updates.
	WatchedSince time.Time
	// Created, Started and Exited are zero until known.
	Created time.Time
	Started time.Time
	Exited  time.Time
	// ExitStatus is the init process's exit status once Exited is set.
	ExitStatus uint32
}

// Gone reports whether the container has exited or been removed.
func (i Info) Gone() bool { return !i.Exited.IsZero() }

// kubernetesNames fills Name, Pod and PodNamespace from the labels, then
// from the spec's CRI annotations; Name falls back to the ID.
func (i *Info) kubernetesNames() {
	var annot map[string]string
	if i.Spec != nil {
		annot = i.Spec.Annotations
	}
	first := func(vals ...string) string {
		for _, v := range vals {
			if v != "" {
				return v
			}
		}
		return ""
	}
	i.Pod = first(i.Labels[LabelPodName], annot[annotSandboxName])
	i.PodNamespace = first(i.Labels[LabelPodNamespace], annot[annotSandboxNS])
	i.Name = first(i.Labels[LabelContainerName], annot[annotContainerName], i.Labels[labelNerdctlName], i.ID)
}

// Ref is the container as events name it.
func (i Info) Ref() *event.Container {
	return &event.Container{ID: i.ID, Name: i.Name, Image: i.Image, Pod: i.Pod, PodNamespace: i.PodNamespace}
}
