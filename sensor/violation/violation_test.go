package violation

import (
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/decode"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/kernel"
)

// fakePolicies names policy 1 "web" (enforce) and 2 "audit-all" (audit),
// and finds a breach in every write below /etc by the container of cgroup 7.
type fakePolicies struct{}

func (fakePolicies) PolicyName(id uint32) (string, string) {
	switch id {
	case 1:
		return "web", enforce.ModeEnforce
	case 2:
		return "audit-all", enforce.ModeAudit
	}
	return "policy_?", ""
}

func (fakePolicies) AuditWrite(cgroup uint64, path, target string) (enforce.Breach, bool) {
	if cgroup != 7 {
		return enforce.Breach{}, false
	}
	for _, p := range []string{path, target} {
		if len(p) > 5 && p[:5] == "/etc/" {
			return enforce.Breach{Policy: "web", Mode: enforce.ModeEnforce, Reason: "ro"}, true
		}
	}
	return enforce.Breach{}, false
}

func (fakePolicies) AuditUnplaced(cgroup uint64) (enforce.Breach, bool) {
	if cgroup != 7 {
		return enforce.Breach{}, false
	}
	return enforce.Breach{Policy: "web", Mode: enforce.ModeEnforce, Reason: "ro, cut"}, true
}

// locate is a Locate for tests: paths below /c8 are in the root filesystem
// of container 8, /vol is none's, everything else container 7's; a final
// /link is followed to /etc/linked.
func locate(p string, follow bool) (uint64, string, bool) {
	switch {
	case strings.HasPrefix(p, "/vol/"):
		return 0, "", false
	case strings.HasPrefix(p, "/c8/"):
		return 8, p[3:], true
	case follow && strings.HasSuffix(p, "/link"):
		return 7, "/etc/linked", true
	}
	return 7, p, true
}

func TestComplete(t *testing.T) {
	for _, c := range []struct {
		name   string
		v      decode.Violation
		policy string
		mode   string
		rule   string
		reason string
	}{
		{"enforced bind", decode.Violation{PolicyID: 1, Rule: enforce.RuleBindInterfaces, Action: enforce.ActionDeny},
			"web", "enforce", "bindInterfaces", "accepting traffic outside the allowed interfaces and ports"},
		{"enforcing policy, audited by the tier", decode.Violation{PolicyID: 1, Rule: enforce.RuleReadOnly, Action: enforce.ActionAudit},
			"web", "enforce", "readOnlyRootFilesystem", "write to the container's read-only root filesystem: not enforceable on this kernel"},
		{"audit policy", decode.Violation{PolicyID: 2, Rule: enforce.RuleAllowedRegistries, Action: enforce.ActionAudit},
			"audit-all", "audit", "allowedRegistries", "image not from an allowed registry"},
		{"policy of an older set", decode.Violation{PolicyID: 9, Rule: enforce.RuleDenyPrivileged, Action: enforce.ActionDeny},
			"policy_?", "", "denyPrivileged", "privileged container"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := event.Event{Kind: event.KindViolation, CgroupID: 7}
			New(fakePolicies{}, 0).Complete(&e, c.v)
			if e.Policy != c.policy || e.Mode != c.mode || e.Rule != c.rule || e.Reason != c.reason || e.Suppressed != 0 {
				t.Fatalf("got policy %q mode %q rule %q reason %q suppressed %d", e.Policy, e.Mode, e.Rule, e.Reason, e.Suppressed)
			}
		})
	}
}

// TestSuppressedAccounting follows one identical violation through its
// reports and the polls of the kernel's rate limiter: each report says
// what was suppressed since the one before, never twice.
func TestSuppressedAccounting(t *testing.T) {
	s := New(fakePolicies{}, 0)
	v := decode.Violation{PolicyID: 1, Rule: enforce.RuleReadOnly, Action: enforce.ActionDeny, Owner: 7, Op: 3, Object: 99}
	report := func(total uint64) uint64 {
		v.SuppressedTotal = total
		e := event.Event{Kind: event.KindViolation, CgroupID: 7}
		s.Complete(&e, v)
		return e.Suppressed
	}
	kern := func(total uint64) []kernel.SuppressedViolation {
		return []kernel.SuppressedViolation{{Cgroup: 7, Policy: 1, Rule: enforce.RuleReadOnly, Op: 3, Object: 99, Action: enforce.ActionDeny, Total: total}}
	}
	if got := report(0); got != 0 {
		t.Fatalf("first report: %d suppressed", got)
	}
	if got := report(40); got != 40 {
		t.Fatalf("second report: %d suppressed, want 40", got)
	}
	// The flood goes on unreported: the poll reports the 15 more.
	evs := s.Suppressed(kern(55), time.Unix(1, 0))
	if len(evs) != 1 || evs[0].Suppressed != 15 || evs[0].Policy != "web" || evs[0].Rule != "readOnlyRootFilesystem" ||
		evs[0].Verdict != event.VerdictDeny || evs[0].Message == "" {
		t.Fatalf("poll: %+v", evs)
	}
	if evs := s.Suppressed(kern(55), time.Unix(2, 0)); len(evs) != 0 {
		t.Fatalf("a poll with nothing new reported %+v", evs)
	}
	if got := report(60); got != 5 {
		t.Fatalf("report after the poll: %d suppressed, want 5", got)
	}
	if n, _ := s.Tracked(); n != 1 {
		t.Fatalf("%d counts tracked, want 1", n)
	}
	// The kernel's rate limiter forgot it: so does the stage.
	s.Suppressed(nil, time.Unix(3, 0))
	if n, _ := s.Tracked(); n != 0 {
		t.Fatalf("%d counts tracked after the kernel forgot them, want 0", n)
	}
}

// TestTrackedIsBounded floods the stage with distinct violations: it keeps
// at most its limit and counts the rest.
func TestTrackedIsBounded(t *testing.T) {
	s := New(fakePolicies{}, 4)
	for i := range 10 {
		e := event.Event{Kind: event.KindViolation, CgroupID: 7}
		s.Complete(&e, decode.Violation{PolicyID: 1, Rule: enforce.RuleReadOnly, Owner: 7, Object: uint32(i), SuppressedTotal: 3})
		if e.Suppressed != 3 {
			t.Fatalf("violation %d: %d suppressed, want 3", i, e.Suppressed)
		}
	}
	if n, untracked := s.Tracked(); n != 4 || untracked != 6 {
		t.Fatalf("tracked %d untracked %d, want 4 and 6", n, untracked)
	}
	var list []kernel.SuppressedViolation
	for i := range 10 {
		list = append(list, kernel.SuppressedViolation{Cgroup: 7, Policy: 1, Rule: enforce.RuleReadOnly, Object: uint32(i), Total: 3})
	}
	s.Suppressed(list, time.Unix(1, 0))
	if n, untracked := s.Tracked(); n != 4 || untracked != 12 {
		t.Fatalf("after a poll of 10: tracked %d untracked %d, want 4 and 12", n, untracked)
	}
}

func TestHeld(t *testing.T) {
	s := New(fakePolicies{}, 0)
	e := event.Event{Kind: event.KindExec, PID: 5, CgroupID: 7, Binary: "/bin/sh", Time: time.Unix(9, 0)}
	if v := s.Held(enforce.Member{}, &e); v != nil {
		t.Fatalf("no exec rule: %+v", v)
	}
	v := s.Held(enforce.Member{ExecPolicy: 1, ExecRule: enforce.RuleAllowedRegistries, ExecAction: enforce.ActionDeny}, &e)
	if v == nil || v.Kind != event.KindViolation || v.Verdict != event.VerdictDeny || v.Policy != "web" ||
		v.Rule != "allowedRegistries" || v.Binary != "/bin/sh" || v.PID != 5 || !v.Time.Equal(e.Time) ||
		v.Reason != "image not from an allowed registry; the container's first process was killed before its first instruction" {
		t.Fatalf("held exec under a deny: %+v", v)
	}
	v = s.Held(enforce.Member{ExecPolicy: 2, ExecRule: enforce.RuleDenyPrivileged, ExecAction: enforce.ActionAudit}, &e)
	if v == nil || v.Verdict != event.VerdictAudit || v.Mode != "audit" || v.Reason != "privileged container" {
		t.Fatalf("held exec under an audit: %+v", v)
	}
}

func TestAuditFile(t *testing.T) {
	s := New(fakePolicies{}, 0)
	for _, c := range []struct {
		name     string
		e        event.Event
		want     bool
		path     string
		objectCg uint64
		target   string // the operation's other name, from the object's root
	}{
		{"write to /etc", event.Event{Kind: event.KindFile, Op: "open", Path: "/etc/passwd"}, true, "/etc/passwd", 0, ""},
		{"rename into /etc", event.Event{Kind: event.KindFile, Op: "rename", Path: "/tmp/a", Target: "/etc/a"}, true, "/etc/a", 0, "/tmp/a"},
		{"link from /etc", event.Event{Kind: event.KindFile, Op: "link", Path: "/etc/a", Target: "/tmp/a"}, true, "/etc/a", 0, "/tmp/a"},
		{"rename out of a volume", event.Event{Kind: event.KindFile, Op: "rename", Path: "/vol/a", Target: "/etc/a"}, true, "/etc/a", 0, ""},
		{"open through a symlink", event.Event{Kind: event.KindFile, Op: "open", Path: "/tmp/link"}, true, "/etc/linked", 0, ""},
		{"unlink of the symlink itself", event.Event{Kind: event.KindFile, Op: "unlink", Path: "/tmp/link"}, false, "", 0, ""},
		{"file_setattr through a symlink", event.Event{Kind: event.KindFile, Op: "fileattr", Path: "/tmp/link"}, true, "/etc/linked", 0, ""},
		{"file_setattr of the symlink itself (AT_SYMLINK_NOFOLLOW)", event.Event{Kind: event.KindFile, Op: "fileattr", Path: "/tmp/link", Flags: 0x100}, false, "", 0, ""},
		{"utimensat of the symlink itself (AT_SYMLINK_NOFOLLOW)", event.Event{Kind: event.KindFile, Op: "utimes", Path: "/tmp/link", Flags: 0x100}, false, "", 0, ""},
		{"lchown of the symlink itself (the kernel's AT_SYMLINK_NOFOLLOW)", event.Event{Kind: event.KindFile, Op: "chown", Path: "/tmp/link", Flags: 0x100}, false, "", 0, ""},
		{"lsetxattr of the symlink itself", event.Event{Kind: event.KindFile, Op: "setxattr", Path: "/tmp/link", Flags: 0x100}, false, "", 0, ""},
		{"lremovexattr of the symlink itself", event.Event{Kind: event.KindFile, Op: "removexattr", Path: "/tmp/link", Flags: 0x100}, false, "", 0, ""},
		{"removexattr through a symlink", event.Event{Kind: event.KindFile, Op: "removexattr", Path: "/tmp/link"}, true, "/etc/linked", 0, ""},
		{"fchownat through a symlink", event.Event{Kind: event.KindFile, Op: "chown", Path: "/tmp/link", Flags: 0x1000}, true, "/etc/linked", 0, ""},
		{"symlink whose contents name /etc", event.Event{Kind: event.KindFile, Op: "symlink", Path: "/tmp/l", Target: "/etc/x"}, false, "", 0, ""},
		{"another container's root", event.Event{Kind: event.KindFile, Op: "open", Path: "/c8/etc/passwd"}, false, "", 0, ""},
		{"a volume", event.Event{Kind: event.KindFile, Op: "open", Path: "/vol/etc/x"}, false, "", 0, ""},
		{"unresolved path", event.Event{Kind: event.KindFile, Op: "open", Path: "/etc/passwd", PathScope: "unresolved"}, false, "", 0, ""},
		{"runtime setup before the first exec", event.Event{Kind: event.KindFile, Op: "open", Path: "/etc/passwd", Pending: true}, false, "", 0, ""},
		{"not a file event", event.Event{Kind: event.KindExec, Path: "/etc/passwd"}, false, "", 0, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.e.PID, c.e.CgroupID = 3, 7
			v := s.AuditFile(&c.e, locate, 7)
			if (v != nil) != c.want {
				t.Fatalf("violation %+v, want one: %v", v, c.want)
			}
			if v != nil && (v.Kind != event.KindViolation || v.Verdict != event.VerdictAudit || v.Rule != "readOnlyRootFilesystem" ||
				v.Policy != "web" || v.Reason != "ro" || v.Path != c.path || v.Target != c.target || v.PID != 3 || v.ObjectCgroupID != c.objectCg) {
				t.Fatalf("violation %+v", v)
			}
		})
	}
}

// TestAuditFileCut: a name (path or target) the kernel cut short names no
// object for certain, wherever its first bytes point (an allowed /tmp, a
// volume, another container's root): with no whole name to judge, the
// write is judged under the writer's own container's read-only rules,
// never let pass unjudged. A whole name is still placed and judged where
// it lies, whoever writes.
func TestAuditFileCut(t *testing.T) {
	s := New(fakePolicies{}, 0)
	cut := decode.ScopeTruncated
	for _, c := range []struct {
		name              string
		e                 event.Event
		actor             uint64
		want              bool
		reason, path, tgt string
	}{
		{"cut inside /tmp", event.Event{Op: "open", Path: "/tmp/aaaa/./././.", PathScope: cut}, 7, true, "ro, cut", "/tmp/aaaa/./././.", ""},
		{"cut on a volume's path", event.Event{Op: "open", Path: "/vol/d1/d2", PathScope: cut}, 7, true, "ro, cut", "/vol/d1/d2", ""},
		{"whole allowed path, cut target", event.Event{Op: "rename", Path: "/tmp/a", Target: "/tmp/././.", TargetScope: cut}, 7, true, "ro, cut", "/tmp/a", "/tmp/././."},
		{"whole path in a read-only root, cut target, another writer", event.Event{Op: "rename", Path: "/etc/passwd", Target: "/tmp/././.", TargetScope: cut}, 8, true, "ro", "/etc/passwd", ""},
		{"cut path, whole target in a read-only root", event.Event{Op: "rename", Path: "/tmp/././.", Target: "/etc/x", PathScope: cut}, 8, true, "ro", "/etc/x", ""},
		{"writer under no read-only rule", event.Event{Op: "open", Path: "/tmp/x/./.", PathScope: cut}, 8, false, "", "", ""},
		{"unresolved path, whole target in a read-only root", event.Event{Op: "rename", Path: "fd:3", PathScope: "unresolved", Target: "/etc/x"}, 8, true, "ro", "/etc/x", ""},
		{"whole allowed path, unresolved target", event.Event{Op: "rename", Path: "/tmp/a", Target: "x", TargetScope: "unresolved"}, 7, false, "", "", ""},
		{"runtime setup before the first exec", event.Event{Op: "open", Path: "/tmp/x/./.", PathScope: cut, Pending: true}, 7, false, "", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.e.Kind, c.e.PID, c.e.CgroupID = event.KindFile, 3, 9
			v := s.AuditFile(&c.e, locate, c.actor)
			if (v != nil) != c.want {
				t.Fatalf("violation %+v, want one: %v", v, c.want)
			}
			if v != nil && (v.Kind != event.KindViolation || v.Verdict != event.VerdictAudit || v.Rule != "readOnlyRootFilesystem" ||
				v.Policy != "web" || v.Reason != c.reason || v.Path != c.path || v.Target != c.tgt) {
				t.Fatalf("violation %+v", v)
			}
		})
	}
}
