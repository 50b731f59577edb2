package sensor

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/posture"
)

// ContainerStarted is told, by the runtime watcher, of a container whose
// cgroup exists, before its entrypoint runs: the hold stage watches it and
// puts it under its policies; its start and posture are reported.
func (s *Sensor) ContainerStarted(info container.Info) {
	if s.holder != nil {
		s.holder.Known(info)
	}
	now := time.Now()
	c := info.Ref()
	s.emit(event.Event{Time: now, Kind: event.KindContainer, Verdict: event.VerdictAllow, CgroupID: info.CgroupID,
		Container: c, PID: info.Pid, Message: "started"})
	for _, e := range s.posture.Events(c, info.CgroupID, info.Pid, info.Spec, now) {
		s.emit(e)
	}
}

// ContainerGone is told of a container that exited or disappeared: it is
// taken off its policies, and its end reported.
func (s *Sensor) ContainerGone(info container.Info) error {
	e := event.Event{Kind: event.KindContainer, Verdict: event.VerdictAllow, CgroupID: info.CgroupID,
		Container: info.Ref(), Message: "gone"}
	if !info.Exited.IsZero() {
		code := int32(info.ExitStatus)
		e.ExitCode = &code
	}
	s.emit(e)
	return s.engine.Remove(info.CgroupID)
}

// RuntimeDown is told that the runtime stopped answering: containers
// waited for are named from their cgroup paths at once.
func (s *Sensor) RuntimeDown() {
	if s.holder != nil {
		s.holder.RuntimeDown()
	}
}

// applyPolicy puts a container under the policies that select it: the hold
// stage calls it, and only it. pid is a process of the container, used for
// its network namespace when the runtime has not said which process is its
// init.
func (s *Sensor) applyPolicy(info container.Info, pid uint32) (enforce.Member, error) {
	if info.CgroupID == 0 {
		return enforce.Member{}, nil
	}
	if s.kern.IsExempt(info.CgroupID) {
		// The sensor's own container: no policy selects it, whatever
		// its selectors say (the kernel judges it by nothing either).
		s.cfg.Logger.Info("the sensor's own container is exempt from policies", "container", info.ID)
		return enforce.Member{}, nil
	}
	if s.exemptPod(info) {
		// Another pod of the sensor's own DaemonSet (the next agent of a
		// rolling update): exempt like the sensor's own container, and
		// taken off any policy it was put under before its pod was known.
		// Its pod's cgroup too, as the sensor's own: a container the
		// kubelet makes there later (a restart of the next agent, after
		// this one has gone) is exempt from its creation, daemon or not.
		if err := s.kern.Exempt(info.CgroupID); err != nil {
			return enforce.Member{}, fmt.Errorf("container %s: %w", info.ID, err)
		}
		if err := s.exemptPodCgroup(info); err != nil {
			s.cfg.Logger.Warn("the pod cgroup of a container of the sensor's own DaemonSet is not exempt: a container made there while no daemon runs will be held", "container", info.ID, "error", err)
		}
		s.cfg.Logger.Info("a container of the sensor's own DaemonSet is exempt from policies", "container", info.ID, "pod", info.Labels[container.LabelPodUID])
		return enforce.Member{}, s.engine.Remove(info.CgroupID)
	}
	t := enforce.Target{
		CgroupID:     info.CgroupID,
		ID:           info.ID,
		Name:         info.Name,
		Image:        info.Image,
		Labels:       s.labelsOf(info), // pod labels where a source knows them
		PodNamespace: info.PodNamespace,
		Privileged:   posture.Privileged(info.Spec),
	}
	if info.Pid != 0 {
		pid = info.Pid // the runtime's word beats a process seen in the cgroup early
	}
	if pid != 0 {
		t.NetNS = "/proc/" + strconv.FormatUint(uint64(pid), 10) + "/ns/net"
		// Pinned now, before the container's code runs: what it does to
		// its namespaces later changes nothing.
		if err := s.ifaces.Pin(info.CgroupID, t.NetNS); err != nil {
			s.cfg.Logger.Warn("pin network namespace", "container", info.ID, "error", err)
		}
	}
	t.Root = s.rootOf(info, pid)
	m, err := s.engine.Apply(t)
	if err != nil {
		return m, fmt.Errorf("container %s: policy: %w", info.ID, err)
	}
	return m, nil
}

// Containers lists the containers the sensor knows, when it follows a runtime.
func (s *Sensor) Containers() []container.Info {
	if s.cfg.Containers == nil {
		return nil
	}
	return s.cfg.Containers.List()
}

// Posture evaluates each running container's OCI spec against the CIS
// checks a node can see.
func (s *Sensor) Posture() []posture.Report {
	var out []posture.Report
	for _, c := range s.Containers() {
		if c.Gone() {
			continue
		}
		out = append(out, posture.Report{Container: *c.Ref(), Findings: s.posture.Evaluate(c.Spec)})
	}
	slices.SortFunc(out, func(a, b posture.Report) int { return strings.Compare(a.Container.Name, b.Container.Name) })
	return out
}
