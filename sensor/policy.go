package sensor

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/kernel"
	"github.com/ringfence/ringfence/sensor/posture"
)

// loadPolicies reads the configured policy paths and, when they are valid,
// makes them the set in force. Invalid files change nothing: their
// problems are returned, logged, reported as an event and kept in status.
func (s *Sensor) loadPolicies() error {
	if len(s.cfg.Policies) == 0 && !s.hasSources() {
		return nil
	}
	s.policyPrint = enforce.Fingerprint(s.cfg.Policies...)
	pols, files, problems := enforce.LoadPaths(s.cfg.Policies...)
	pols, files, problems = s.withSources(pols, files, problems) // policies of other sources (Kubernetes objects): policy_sources.go
	if len(problems) > 0 {
		lines := make([]string, len(problems))
		for i, p := range problems {
			lines[i] = p.String()
			s.cfg.Logger.Error("policy refused", "problem", lines[i])
		}
		s.engine.Reject(lines)
		s.emitPolicy(fmt.Sprintf("policy refused, generation %d stays in force: %s", s.engine.Status().Generation, strings.Join(lines, "; ")))
		return problems
	}
	if err := s.engine.Load(pols, files); err != nil {
		s.cfg.Logger.Error("policy refused", "error", err)
		s.emitPolicy(fmt.Sprintf("policy refused, generation %d stays in force: %v", s.engine.Status().Generation, err))
		return err
	}
	st := s.engine.Status()
	s.cfg.Logger.Info("policy loaded", "generation", st.Generation, "policies", st.Policies, "files", files)
	s.emitPolicy(fmt.Sprintf("policy generation %d loaded: %s", st.Generation, strings.Join(st.Policies, ", ")))
	return nil
}

func (s *Sensor) emitPolicy(msg string) {
	s.emit(event.Event{Kind: event.KindSensor, Verdict: event.VerdictAllow, Message: msg})
}

// ReloadPolicies reads the policy paths again (SIGHUP does this).
func (s *Sensor) ReloadPolicies() error {
	s.policyMu.Lock()
	defer s.policyMu.Unlock()
	return s.loadPolicies()
}

// reloadIfChanged reloads when a policy file changed, appeared or went.
func (s *Sensor) reloadIfChanged() {
	if len(s.cfg.Policies) == 0 {
		return
	}
	s.policyMu.Lock()
	defer s.policyMu.Unlock()
	if enforce.Fingerprint(s.cfg.Policies...) != s.policyPrint {
		s.loadPolicies()
	}
}

// PolicyStatus describes the policy set in force.
func (s *Sensor) PolicyStatus() enforce.Status { return s.engine.Status() }

// ContainerStarted is called when a container's cgroup exists, before its
// entrypoint runs: it is watched and put under its policies.
func (s *Sensor) ContainerStarted(info container.Info) error {
	err := s.Watch(info.CgroupID)
	if _, aerr := s.applyPolicy(info, info.Pid); aerr != nil {
		err = errors.Join(err, aerr)
	}
	s.emitPosture(info)
	return err
}

// ContainerGone is called when a container exited or disappeared.
func (s *Sensor) ContainerGone(info container.Info) error {
	return s.engine.Remove(info.CgroupID)
}

// applyPolicy puts a container under the policies that select it. pid is
// a process of the container, used for its network namespace when the
// runtime has not said which process is its init.
func (s *Sensor) applyPolicy(info container.Info, pid uint32) (enforce.Member, error) {
	if info.CgroupID == 0 {
		return enforce.Member{}, nil
	}
	t := enforce.Target{
		CgroupID:   info.CgroupID,
		ID:         info.ID,
		Name:       info.Name,
		Image:      info.Image,
		Labels:     s.labelsOf(info), // pod labels where known: policy_sources.go
		Namespace:  info.PodNamespace,
		Privileged: posture.Privileged(info.Spec),
	}
	if info.Pid != 0 {
		pid = info.Pid // the runtime's word beats a process seen in the cgroup early
	}
	if pid != 0 {
		t.NetNS = "/proc/" + strconv.FormatUint(uint64(pid), 10) + "/ns/net"
	}
	m, err := s.engine.Apply(t)
	if err != nil {
		s.cfg.Logger.Error("apply policy", "container", info.ID, "error", err)
		return m, fmt.Errorf("container %s: policy: %w", info.ID, err)
	}
	return m, nil
}

// heldViolation is the violation of a container's first exec, which the
// kernel held before the container had rules: userspace judges it.
func (s *Sensor) heldViolation(m enforce.Member, e *event.Event) *event.Event {
	if m.ExecAction == enforce.ActionNone {
		return nil
	}
	name, mode := s.engine.PolicyName(m.ExecPolicy)
	v := event.Event{
		Time: e.Time, Kind: event.KindViolation, Verdict: event.Verdict(m.ExecAction.String()), Source: "userspace",
		PID: e.PID, PPID: e.PPID, UID: e.UID, GID: e.GID, Comm: e.Comm, CgroupID: e.CgroupID,
		Binary: e.Binary, Policy: name, Rule: m.ExecRule.String(), Mode: mode, Reason: ruleReason(m.ExecRule),
	}
	if m.ExecAction == enforce.ActionDeny {
		v.Reason += "; the container's first process was killed before its first instruction"
	}
	return &v
}

func ruleReason(r enforce.Rule) string {
	switch r {
	case enforce.RuleReadOnly:
		return "write to the container's read-only root filesystem"
	case enforce.RuleBindInterfaces:
		return "accepting traffic outside the allowed interfaces and ports"
	case enforce.RuleAllowedRegistries:
		return "image not from an allowed registry"
	case enforce.RuleDenyPrivileged:
		return "privileged container"
	}
	return ""
}

// nameViolation completes a violation the kernel reported: policy name,
// mode, reason, and the count of suppressed identical reports.
func (s *Sensor) nameViolation(e *event.Event) {
	if e.Kind != event.KindViolation || e.Policy != "" {
		return
	}
	e.Policy, e.Mode = s.engine.PolicyName(e.PolicyID)
	r := ruleFromName(e.Rule)
	e.Reason = ruleReason(r)
	if e.Mode == enforce.ModeEnforce && e.Verdict == event.VerdictAudit {
		e.Reason += ": " + enforce.Unenforceable
	}
	s.mu.Lock()
	k := suppressKey{e.CgroupID, e.PolicyID, r, e.RawOp, e.ObjectHash}
	if e.SuppressedTotal > s.suppressed[k] {
		e.Suppressed = e.SuppressedTotal - s.suppressed[k]
		s.suppressed[k] = e.SuppressedTotal
	}
	s.mu.Unlock()
}

func ruleFromName(name string) enforce.Rule {
	for r := enforce.RuleReadOnly; r <= enforce.RuleDenyPrivileged; r++ {
		if r.String() == name {
			return r
		}
	}
	return 0
}

type suppressKey struct {
	cgroup uint64
	policy uint32
	rule   enforce.Rule
	op     uint16
	object uint32
}

// pollSuppressed reports identical violations the kernel counted but did
// not report, once a flood is over and no later report carried them.
func (s *Sensor) pollSuppressed() {
	list, err := s.kern.SuppressedViolations()
	if err != nil {
		s.cfg.Logger.Error("read violation rate limits", "error", err)
		return
	}
	now := time.Now()
	for _, sv := range list {
		k := suppressKey{sv.Cgroup, sv.Policy, sv.Rule, sv.Op, sv.Object}
		s.mu.Lock()
		delta := sv.Total - min(sv.Total, s.suppressed[k])
		s.suppressed[k] = max(s.suppressed[k], sv.Total)
		s.mu.Unlock()
		if delta == 0 {
			continue
		}
		name, mode := s.engine.PolicyName(sv.Policy)
		s.emit(event.Event{Time: now, Kind: event.KindViolation, Verdict: event.Verdict(sv.Action.String()), CgroupID: sv.Cgroup,
			Policy: name, Rule: sv.Rule.String(), Mode: mode, Reason: ruleReason(sv.Rule), Suppressed: delta,
			Message: "identical violations counted but not reported one by one (rate limit)"})
	}
}

// auditFile judges, where the kernel cannot (cgroup-only tier), a file
// write seen at the syscall against the read-only rule, and returns the
// violation to report alongside it.
func (s *Sensor) auditFile(e *event.Event) *event.Event {
	// A pending event is the runtime's setup of the container, before its
	// first exec: the kernel does not judge that either.
	if s.probe.Tier == kernel.TierFull || e.Kind != event.KindFile || e.PathScope != "" || e.Pending {
		return nil
	}
	mounts := func() []string {
		var out []string
		if c, ok := s.containerOf(e.CgroupID); ok && c.Spec != nil {
			for _, m := range c.Spec.Mounts {
				out = append(out, m.Destination)
			}
		}
		return out
	}
	cg := s.containerCgroup(e.CgroupID)
	breach := func(p string) (string, string, bool) { return s.engine.ReadOnlyBreach(cg, p, mounts) }
	policy, mode, ok := breach(e.Path)
	if !ok && e.Target != "" && e.Op != "symlink" {
		policy, mode, ok = breach(e.Target)
	}
	if !ok {
		return nil
	}
	v := *e
	v.Kind, v.Verdict, v.Policy, v.Rule, v.Mode = event.KindViolation, event.VerdictAudit, policy, enforce.RuleReadOnly.String(), mode
	v.Reason = ruleReason(enforce.RuleReadOnly)
	if mode == enforce.ModeEnforce {
		v.Reason += ": " + enforce.Unenforceable
	}
	return &v
}

// emitPosture reports each CIS finding of a new container's spec as a
// posture event.
func (s *Sensor) emitPosture(info container.Info) {
	now := time.Now()
	c := &event.Container{ID: info.ID, Name: info.Name, Image: info.Image, Pod: info.Pod, Namespace: info.PodNamespace}
	for _, f := range s.posture.Evaluate(info.Spec) {
		s.emit(event.Event{Time: now, Kind: event.KindPosture, CgroupID: info.CgroupID, Container: c, PID: info.Pid,
			Rule: "cis-" + f.Check, Severity: f.Severity, Message: f.Title, Reason: f.Detail})
	}
}

// PoliciesOf names the policies that select the container of cgroup.
func (s *Sensor) PoliciesOf(cgroup uint64) []string { return s.engine.PoliciesOf(cgroup) }

// Posture evaluates each running container's OCI spec against the CIS
// checks a node can see.
func (s *Sensor) Posture() []posture.Report {
	var out []posture.Report
	for _, c := range s.Containers() {
		if c.Gone() {
			continue
		}
		out = append(out, posture.Report{
			Container: event.Container{ID: c.ID, Name: c.Name, Image: c.Image, Pod: c.Pod, Namespace: c.PodNamespace},
			Findings:  s.posture.Evaluate(c.Spec),
		})
	}
	slices.SortFunc(out, func(a, b posture.Report) int { return strings.Compare(a.Container.Name, b.Container.Name) })
	return out
}
