package sensor

import (
	"errors"
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
	// pods are the exempt pods' cgroups, by pod uid (PodExempt).
	pods map[string]uint64
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

// exemptedPod records that the cgroup of the pod uid is exempt, and
// forgets the pods whose cgroups are not any more (removed).
func (s *Sensor) exemptedPod(uid string, cgroup uint64) {
	s.podLabels.mu.Lock()
	defer s.podLabels.mu.Unlock()
	for u, id := range s.podLabels.pods {
		if !s.kern.IsExempt(id) {
			delete(s.podLabels.pods, u)
		}
	}
	if s.podLabels.pods == nil {
		s.podLabels.pods = map[string]uint64{}
	}
	s.podLabels.pods[uid] = cgroup
}

// PodExempt reports whether the cgroup of the pod uid, one of the
// sensor's own DaemonSet, is exempt in the kernel: a container made there
// from now on is exempt from its creation, whether a daemon runs or not.
func (s *Sensor) PodExempt(uid string) bool {
	s.podLabels.mu.Lock()
	id, ok := s.podLabels.pods[uid]
	s.podLabels.mu.Unlock()
	return ok && s.kern.IsExempt(id)
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
