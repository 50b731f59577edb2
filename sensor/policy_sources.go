package sensor

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/container"
)

// policySources holds what reaches the policy set besides --policy files:
// the policies of other sources (Kubernetes objects) and the pod labels
// that selectors match. Guarded by Sensor.policyMu, but labeler, which the
// container path reads, by its own lock.
type policySources struct {
	extra map[string]sourceSet

	mu      sync.Mutex
	labeler func(container.Info) map[string]string
}

// sourceSet is one source's policies, where each came from, and the
// problems of the ones it could not read.
type sourceSet struct {
	policies []enforce.RuntimePolicy
	origins  []string
	problems enforce.Problems
}

// SetPolicies replaces the policies of source (e.g. "kubernetes") and makes
// the --policy files plus every source's policies the set in force, through
// the same checks and atomic switch as files. problems are the source's
// documents it could not read: with any, or when the whole set is refused,
// the set in force stays, the refusal is logged, reported as an event and
// kept in status, and returned. A refused source set is not kept: a later
// reload of the files does not retry it.
func (s *Sensor) SetPolicies(source string, pols []enforce.RuntimePolicy, origins []string, problems enforce.Problems) error {
	s.policyMu.Lock()
	defer s.policyMu.Unlock()
	if s.sources.extra == nil {
		s.sources.extra = map[string]sourceSet{}
	}
	prev, had := s.sources.extra[source]
	s.sources.extra[source] = sourceSet{policies: pols, origins: origins, problems: problems}
	err := s.loadPolicies()
	if err != nil {
		if had {
			s.sources.extra[source] = prev
		} else {
			delete(s.sources.extra, source)
		}
	}
	return err
}

// hasSources reports whether any source besides files gives policies.
func (s *Sensor) hasSources() bool { return len(s.sources.extra) > 0 }

// withSources adds every source's policies, origins and problems to those
// of the files; a name given twice is a problem.
func (s *Sensor) withSources(pols []enforce.RuntimePolicy, files []string, problems enforce.Problems) ([]enforce.RuntimePolicy, []string, enforce.Problems) {
	seen := map[string]enforce.Source{}
	for _, p := range pols {
		seen[p.Name] = p.Source
	}
	for _, name := range slices.Sorted(maps.Keys(s.sources.extra)) {
		set := s.sources.extra[name]
		problems = append(problems, set.problems...)
		for _, p := range set.policies {
			if first, dup := seen[p.Name]; dup {
				problems = append(problems, enforce.Problem{File: p.Source.File, Line: p.Source.Line, Path: "metadata.name",
					Message: fmt.Sprintf("policy %q is already defined at %s:%d", p.Name, first.File, first.Line)})
				continue
			}
			seen[p.Name] = p.Source
			pols = append(pols, p)
		}
		files = append(files, set.origins...)
	}
	return pols, files, problems
}

// SetPodLabels makes selectors match the labels labeler gives for a
// container (its pod's labels beside its runtime labels) instead of the
// runtime labels alone. labeler runs while a new container's first exec is
// held, so it must answer within a bounded time.
func (s *Sensor) SetPodLabels(labeler func(container.Info) map[string]string) {
	s.sources.mu.Lock()
	defer s.sources.mu.Unlock()
	s.sources.labeler = labeler
}

// labelsOf are the labels selectors match for a container.
func (s *Sensor) labelsOf(info container.Info) map[string]string {
	s.sources.mu.Lock()
	labeler := s.sources.labeler
	s.sources.mu.Unlock()
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
