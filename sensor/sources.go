package sensor

import (
	"errors"
	"fmt"
	"path"
	"sync"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/container"
)

// SetPolicies replaces the policies of source (e.g. "kubernetes") beside
// the --policy files, through the same checks and one switch
// (policies.Files.SetSource): a refused set leaves the set in force.
func (s *Sensor) SetPolicies(source string, pols []enforce.RuntimePolicy, origins []string, problems enforce.Problems) error {
	return s.policies.SetSource(source, pols, origins, problems)
}

// podLabels gives the labels selectors match for a container: its pod's
// beside its runtime labels, where a source knows them.
type podLabels struct {
	mu      sync.Mutex
	labeler func(container.Info) map[string]string
	exempt  func(container.Info) bool
}

// SetPodLabels makes selectors match the labels labeler gives for a
// container instead of its runtime labels alone. labeler runs while a new
// container's first exec is held, so it must answer within a bounded time.
func (s *Sensor) SetPodLabels(labeler func(container.Info) map[string]string) {
	s.podLabels.mu.Lock()
	defer s.podLabels.mu.Unlock()
	s.podLabels.labeler = labeler
}

// SetExemptPods makes the containers exempt tells exempt as the sensor's
// own are (kernel.Sensor.Exempt): neither held nor judged by any policy.
// The Kubernetes agent marks with it the pods of its own DaemonSet, the
// next agent of a rolling update among them. exempt runs while a new
// container's first exec is held, so it must answer within a bounded time.
func (s *Sensor) SetExemptPods(exempt func(container.Info) bool) {
	s.podLabels.mu.Lock()
	defer s.podLabels.mu.Unlock()
	s.podLabels.exempt = exempt
}

// exemptPod reports whether SetExemptPods' function exempts the container.
func (s *Sensor) exemptPod(info container.Info) bool {
	s.podLabels.mu.Lock()
	exempt := s.podLabels.exempt
	s.podLabels.mu.Unlock()
	return exempt != nil && exempt(info)
}

// exemptPodCgroup exempts the pod cgroup of a container of another pod of
// the sensor's own DaemonSet (podCgroup, checked against the pod's uid and
// never one that holds what the sensor watches).
func (s *Sensor) exemptPodCgroup(info container.Info) error {
	uid := info.Labels[container.LabelPodUID]
	if uid == "" {
		return errors.New("no pod uid label")
	}
	id, ok, err := podCgroup(s.probe.Cgroup2Root, info.CgroupPath, s.cfg.RuntimeParents, uid)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("its cgroup %s is not below a pod's", info.CgroupPath)
	}
	if err := exemptable(path.Dir(path.Clean("/"+info.CgroupPath)), s.cfg.RuntimeParents, s.cfg.WatchCgroups); err != nil {
		return err
	}
	return s.kern.Exempt(id)
}

// PodExempt reports whether the cgroup of the pod uid, one of the
// sensor's own DaemonSet, is exempt in the kernel: a container made there
// from now on is exempt from its creation, whether a daemon runs or not.
// It asks of the pod's live containers the runtime named.
func (s *Sensor) PodExempt(uid string) bool {
	for _, c := range s.Containers() {
		if c.Gone() || c.Labels[container.LabelPodUID] != uid {
			continue
		}
		if id, ok, err := podCgroup(s.probe.Cgroup2Root, c.CgroupPath, s.cfg.RuntimeParents, uid); err == nil && ok && s.kern.IsExempt(id) {
			return true
		}
	}
	return false
}

// labelsOf are the labels selectors match for a container.
func (s *Sensor) labelsOf(info container.Info) map[string]string {
	s.podLabels.mu.Lock()
	labeler := s.podLabels.labeler
	s.podLabels.mu.Unlock()
	if labeler == nil {
		return info.Labels
	}
	return labeler(info)
}

// ReapplyPod puts the running containers of the pod with this uid under the
// policies that select them now: its labels changed.
func (s *Sensor) ReapplyPod(uid string) error {
	var errs []error
	for _, c := range s.Containers() {
		if c.Gone() || c.Labels[container.LabelPodUID] != uid {
			continue
		}
		if _, err := s.applyPolicy(c, 0); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
