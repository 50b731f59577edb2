// Package violation is the violation stage of the event pipeline. It turns
// the kernel's violation records into violation events (the policy's name,
// the rule, the mode and why), keeps the rate limiter's accounting (how many
// identical violations each report stands for), reports the identical
// violations the kernel counted but never reported one by one, and judges
// in userspace what a lower tier's kernel cannot: a file write against the
// read-only rule, and a container's first exec, held before it had rules.
// The rule stays typed from the kernel record to the event.
package violation

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/decode"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/kernel"
)

// DefaultTracked bounds the identical-violation counts the stage remembers:
// twice the kernel rate limiter's table, which it prunes to at every poll.
const DefaultTracked = 32768

// Policies names policies and judges writes: the policy engine.
type Policies interface {
	PolicyName(id uint32) (name, mode string)
	AuditWrite(cgroup uint64, path, target string) (enforce.Breach, bool)
	AuditUnplaced(cgroup uint64) (enforce.Breach, bool)
}

// key identifies identical violations, as the kernel's rate limiter does.
type key struct {
	cgroup uint64
	policy uint32
	rule   enforce.Rule
	op     uint16
	object uint32
}

// Stage is the violation stage. Its methods are safe for concurrent use.
type Stage struct {
	policies Policies
	limit    int

	mu sync.Mutex
	// reported holds, per identical violation, the kernel's suppressed
	// count as last reported: a report carries what grew since.
	reported map[key]uint64
	// untracked counts counts not remembered because the table was full:
	// their next report may repeat what an earlier one said.
	untracked atomic.Uint64
}

// New returns a stage naming policies with p, remembering at most limit
// identical-violation counts (DefaultTracked when limit <= 0).
func New(p Policies, limit int) *Stage {
	if limit <= 0 {
		limit = DefaultTracked
	}
	return &Stage{policies: p, limit: limit, reported: make(map[key]uint64)}
}

// Complete makes e, a violation record's event, a named violation: policy,
// rule, mode, reason, and the identical violations suppressed since the
// previous report of the same one.
func (s *Stage) Complete(e *event.Event, v decode.Violation) {
	e.Policy, e.Mode = s.policies.PolicyName(v.PolicyID)
	e.Rule = v.Rule.String()
	if v.Owner != 0 && v.Owner != e.CgroupID {
		e.ObjectCgroupID = v.Owner // maybe another container's: the enrichment says
	}
	e.Reason = v.Rule.Reason()
	if e.Mode == enforce.ModeEnforce && v.Action == enforce.ActionAudit {
		e.Reason += ": " + enforce.Unenforceable
	}
	if v.SuppressedTotal == 0 {
		return
	}
	k := key{v.Owner, v.PolicyID, v.Rule, v.Op, v.Object}
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.reported[k]; ok || s.track() {
		if v.SuppressedTotal > last {
			e.Suppressed = v.SuppressedTotal - last
			s.reported[k] = v.SuppressedTotal
		}
		return
	}
	e.Suppressed = v.SuppressedTotal
}

// track reports whether one more count fits, counting those that do not.
// Called with mu held.
func (s *Stage) track() bool {
	if len(s.reported) < s.limit {
		return true
	}
	s.untracked.Add(1)
	return false
}

// Suppressed returns a report for each identical violation whose kernel
// count grew since it was last reported: the kernel counted them but did
// not report them one by one (a flood that is over, say). list is the
// kernel's rate limiter, whole: counts of violations it no longer holds are
// forgotten.
func (s *Stage) Suppressed(list []kernel.SuppressedViolation, now time.Time) []event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := make(map[key]uint64, len(list))
	var out []event.Event
	for _, sv := range list {
		k := key{sv.Cgroup, sv.Policy, sv.Rule, sv.Op, sv.Object}
		last := s.reported[k]
		if len(kept) < s.limit {
			kept[k] = max(last, sv.Total)
		} else {
			s.untracked.Add(1)
		}
		if sv.Total <= last {
			continue
		}
		name, mode := s.policies.PolicyName(sv.Policy)
		out = append(out, event.Event{Time: now, Kind: event.KindViolation, Verdict: event.Verdict(sv.Action.String()),
			CgroupID: sv.Cgroup, Policy: name, Rule: sv.Rule.String(), Mode: mode, Reason: sv.Rule.Reason(),
			Suppressed: sv.Total - last, Message: "identical violations counted but not reported one by one (rate limit)"})
	}
	s.reported = kept
	return out
}

// Tracked returns how many identical-violation counts the stage remembers
// and how many it could not, for the status.
func (s *Stage) Tracked() (tracked int, untracked uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reported), s.untracked.Load()
}

// Held judges a container's first exec, which the kernel held before the
// container had rules, under the rules m it has now; nil when none forbids
// it.
func (s *Stage) Held(m enforce.Member, e *event.Event) *event.Event {
	if m.ExecAction == enforce.ActionNone {
		return nil
	}
	name, mode := s.policies.PolicyName(m.ExecPolicy)
	v := event.Event{
		Time: e.Time, Kind: event.KindViolation, Verdict: event.Verdict(m.ExecAction.String()), Source: "userspace",
		PID: e.PID, PPID: e.PPID, UID: e.UID, GID: e.GID, Comm: e.Comm, CgroupID: e.CgroupID, Container: e.Container,
		Binary: e.Binary, Policy: name, Rule: m.ExecRule.String(), Mode: mode, Reason: m.ExecRule.Reason(),
	}
	if m.ExecAction == enforce.ActionDeny {
		v.Reason += "; the container's first process was killed before its first instruction"
	}
	return &v
}

// Locate finds the object a path of a file event names: the container
// whose root filesystem holds it, and its path from that root (follow: the
// path's final symlink, if any, is followed). ok is false for an object on
// no container's root filesystem (a volume, a tmpfs, /proc).
type Locate func(path string, follow bool) (container uint64, rel string, ok bool)

// AuditFile judges, where the kernel cannot (the cgroup-only tier), a file
// write seen at the syscall against the read-only rules of the container
// whose root filesystem holds the object, and returns the would-deny to
// report beside it, or nil. actor is the writer's container cgroup: a write
// whose path the kernel cut short names no object for certain, and is
// judged under the writer's own container's read-only rules as one no
// allowWrites entry holds (fail closed: a path made too deep or too long
// hides nothing).
func (s *Stage) AuditFile(e *event.Event, locate Locate, actor uint64) *event.Event {
	// A path the kernel could not resolve is not judged; a pending event is
	// the runtime's setup of the container, before its first exec.
	if e.Kind != event.KindFile || e.Pending {
		return nil
	}
	// Each whole name is placed and judged as ever; a cut one cannot be,
	// nor one the kernel could not resolve (an unresolved name is not
	// judged). A symlink's target is its contents, no name.
	symlink := e.Op == "symlink"
	pathCut := e.PathScope == decode.ScopeTruncated
	targetCut := e.TargetScope == decode.ScopeTruncated && !symlink
	pathWhole := e.PathScope == ""
	targetWhole := e.Target != "" && e.TargetScope == "" && !symlink
	var (
		owner uint64
		rel   string
		b     enforce.Breach
		ok    bool
	)
	if pathWhole {
		owner, rel, b, ok = s.judge(locate, e.Path, follows(e.Op, e.Flags))
	}
	other, otherFollows, otherWhole := e.Target, false, targetWhole
	if !ok && targetWhole {
		owner, rel, b, ok = s.judge(locate, e.Target, false)
		other, otherFollows, otherWhole = e.Path, follows(e.Op, e.Flags), pathWhole
	}
	if !ok {
		if !pathCut && !targetCut {
			return nil
		}
		if b, ok = s.policies.AuditUnplaced(actor); !ok {
			return nil
		}
		return auditViolation(e, b) // the paths as the event has them, and their scopes
	}
	v := auditViolation(e, b)
	// The written object, and the operation's other name (a rename's or
	// link's), both from the root that holds the object.
	v.Path, v.Target, v.PathScope, v.TargetScope = rel, "", "", ""
	if other != "" && !symlink && otherWhole {
		if o, orel, ok := locate(other, otherFollows); ok && o == owner {
			v.Target = orel
		}
	}
	if owner != e.CgroupID {
		v.ObjectCgroupID = owner
	}
	return v
}

// auditViolation is the would-deny b of the write e.
func auditViolation(e *event.Event, b enforce.Breach) *event.Event {
	v := *e
	v.Kind, v.Verdict, v.Rule = event.KindViolation, event.VerdictAudit, enforce.RuleReadOnly.String()
	v.Policy, v.Mode, v.Reason = b.Policy, b.Mode, b.Reason
	return &v
}

func (s *Stage) judge(locate Locate, p string, follow bool) (uint64, string, enforce.Breach, bool) {
	owner, rel, ok := locate(p, follow)
	if !ok {
		return 0, "", enforce.Breach{}, false
	}
	b, ok := s.policies.AuditWrite(owner, rel, "")
	return owner, rel, b, ok
}

// atSymlinkNofollow is AT_SYMLINK_NOFOLLOW, in the flags of the syscalls
// whose event carries their at_flags: utimensat, fchownat, fchmodat2,
// setxattrat, removexattrat, file_setattr. The kernel sets it for lchown,
// lsetxattr and lremovexattr too, which take no flags and act on a final
// symlink itself.
const atSymlinkNofollow = 0x100

// follows reports whether an operation with these flags (the event's)
// follows a final symlink of its path.
func follows(op string, flags uint32) bool {
	switch op {
	case "unlink", "rmdir", "rename", "link", "symlink", "mkdir", "mknod":
		return false
	case "utimes", "chown", "chmod", "setxattr", "removexattr", "fileattr":
		return flags&atSymlinkNofollow == 0
	}
	return true
}
