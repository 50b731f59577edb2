package enforce

import (
	"fmt"
	"net/netip"
	"strings"
)

// Rule identifies one rule of a policy; the values are the kernel's.
type Rule uint16

// The rules.
const (
	RuleReadOnly          Rule = 1
	RuleBindInterfaces    Rule = 2
	RuleAllowedRegistries Rule = 3
	RuleDenyPrivileged    Rule = 4
)

// String is the rule's field name in a policy file.
func (r Rule) String() string {
	switch r {
	case RuleReadOnly:
		return "readOnlyRootFilesystem"
	case RuleBindInterfaces:
		return "bindInterfaces"
	case RuleAllowedRegistries:
		return "allowedRegistries"
	case RuleDenyPrivileged:
		return "denyPrivileged"
	}
	return fmt.Sprintf("rule_%d", r)
}

// Reason says in a few words what a violation of the rule is.
func (r Rule) Reason() string {
	switch r {
	case RuleReadOnly:
		return "write to the container's read-only root filesystem"
	case RuleBindInterfaces:
		return "accepting traffic outside the allowed interfaces and ports"
	case RuleAllowedRegistries:
		return "image not from an allowed registry"
	case RuleDenyPrivileged:
		return "privileged container"
	}
	return ""
}

// Action is what a rule does when it fires; the values are the kernel's,
// ordered from the mildest: combining takes the largest.
type Action uint16

// The actions.
const (
	ActionNone  Action = 0
	ActionAudit Action = 1
	ActionDeny  Action = 2
)

// String is the verdict an action gives.
func (a Action) String() string {
	switch a {
	case ActionAudit:
		return "audit"
	case ActionDeny:
		return "deny"
	}
	return "allow"
}

// MaxPoliciesPerContainer is how many policies may select one container.
const MaxPoliciesPerContainer = 8

// Kernel limits a policy must fit.
const (
	MaxPortRanges = 8
	MaxInterfaces = 4
)

// KernelPolicy is a policy as the kernel holds it, under its id.
type KernelPolicy struct {
	ReadOnly       bool
	ReadOnlyAction Action
	Bind           bool
	BindAction     Action
	Ports          []PortRange
	Interfaces     []string
}

// AllowWrite is one allowWrites entry as the kernel matches it: Path is an
// exact path, or with Prefix a directory prefix ending in '/'.
type AllowWrite struct {
	Path   string
	Prefix bool
}

// Member is a container's entry: the policies that select it.
type Member struct {
	Owner    uint64
	ReadOnly bool
	Bind     bool
	Policies []uint32
	// ExecPolicy, when not 0, is a policy under which the container may
	// execute nothing (ExecRule says why), with ExecAction.
	ExecPolicy uint32
	ExecRule   Rule
	ExecAction Action
	// UDP4 and UDP6 are addresses every bind policy of the container
	// allows (invalid: none): a UDP socket bound to the wildcard and port
	// 0, as a resolver binds it, is bound there instead.
	UDP4, UDP6 netip.Addr
}

// Kernel is where compiled policies go: the sensor's eBPF maps.
type Kernel interface {
	PutPolicy(id uint32, p KernelPolicy, allow []AllowWrite) error
	DeletePolicy(id uint32, allow []AllowWrite) error
	PutMember(cgroup uint64, m Member) error
	DeleteMember(cgroup uint64) error
	PutBindAddr(cgroup uint64, policy uint32, a netip.Addr) error
	DeleteBindAddr(cgroup uint64, policy uint32, a netip.Addr) error
	PutBindIfindex(cgroup uint64, policy uint32, ifindex uint32) error
	DeleteBindIfindex(cgroup uint64, policy uint32, ifindex uint32) error
	// PutRoot registers the root filesystem of the container of cgroup,
	// whose writes its read-only rule judges; DeleteRoot takes it back.
	PutRoot(cgroup uint64, r RootFS) error
	DeleteRoot(cgroup uint64, r RootFS) error
}

// Capabilities says which rules the kernel tier can enforce; a rule it
// cannot is compiled as audit and reported with Unenforceable.
type Capabilities struct {
	ReadOnly bool
	Bind     bool
}

// Unenforceable is the reason given for a would-deny the tier cannot turn
// into a deny.
const Unenforceable = "not enforceable on this kernel"

// compiled is one policy of a set.
type compiled struct {
	id     uint32
	policy RuntimePolicy
	kp     KernelPolicy
	allow  []AllowWrite
	action Action // of the policy's mode
}

func compile(p RuntimePolicy, id uint32, caps Capabilities) (*compiled, error) {
	c := &compiled{id: id, policy: p, action: ActionAudit}
	if p.Spec.Mode == ModeEnforce {
		c.action = ActionDeny
	}
	if ro := p.Spec.ReadOnlyRootFilesystem; ro != nil {
		c.kp.ReadOnly = true
		c.kp.ReadOnlyAction = c.action
		if !caps.ReadOnly {
			c.kp.ReadOnlyAction = ActionAudit
		}
		for _, w := range ro.AllowWrites {
			c.allow = append(c.allow, allowWrite(w))
		}
	}
	if b := p.Spec.BindInterfaces; b != nil {
		if len(b.Ports) > MaxPortRanges {
			return nil, fmt.Errorf("policy %s: spec.bindInterfaces.ports: %d ranges, at most %d", p.Name, len(b.Ports), MaxPortRanges)
		}
		if len(b.Interfaces) > MaxInterfaces {
			return nil, fmt.Errorf("policy %s: spec.bindInterfaces.interfaces: %d interfaces, at most %d", p.Name, len(b.Interfaces), MaxInterfaces)
		}
		c.kp.Bind = true
		c.kp.BindAction = c.action
		if !caps.Bind {
			c.kp.BindAction = ActionAudit
		}
		c.kp.Ports = b.Ports
		c.kp.Interfaces = b.Interfaces
	}
	return c, nil
}

// allowWrite turns a validated allowWrites entry into its kernel form.
func allowWrite(pattern string) AllowWrite {
	if pattern == "/**" {
		return AllowWrite{Path: "/", Prefix: true}
	}
	if dir, ok := strings.CutSuffix(pattern, "/**"); ok {
		return AllowWrite{Path: dir + "/", Prefix: true}
	}
	return AllowWrite{Path: pattern}
}

// allows reports whether the entries let path be written, as the kernel
// matcher does.
func allows(entries []AllowWrite, path string) bool {
	for _, a := range entries {
		if a.Prefix && strings.HasPrefix(path, a.Path) || !a.Prefix && path == a.Path {
			return true
		}
	}
	return false
}

// verdictFor combines the policies selecting t into its member entry:
// every policy's rules apply, so for each rule the strictest action wins
// (deny over audit), and the first policy listed with it is named.
func verdictFor(t Target, selected []*compiled) Member {
	m := Member{Owner: t.CgroupID}
	for _, c := range selected {
		m.Policies = append(m.Policies, c.id)
		m.ReadOnly = m.ReadOnly || c.kp.ReadOnly
		m.Bind = m.Bind || c.kp.Bind
		exec := func(r Rule) {
			if c.action > m.ExecAction {
				m.ExecPolicy, m.ExecRule, m.ExecAction = c.id, r, c.action
			}
		}
		if regs := c.policy.Spec.AllowedRegistries; len(regs) > 0 {
			img, err := ParseImage(t.Image)
			if t.Image == "" || err != nil || !FromRegistry(img, regs) {
				exec(RuleAllowedRegistries)
			}
		}
		if c.policy.Spec.DenyPrivileged && t.Privileged {
			exec(RuleDenyPrivileged)
		}
	}
	return m
}
