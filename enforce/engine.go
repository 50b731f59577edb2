package enforce

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Iface is the state of one interface in a container's network namespace.
type Iface struct {
	Index uint32 // 0: no such interface now
	Addrs []netip.Addr
}

// Interfaces follows the named interfaces of network namespaces. Follow
// returns their state now; later changes reach Engine.InterfacesChanged.
// Unfollow stops following a container's; Forget also lets go of what was
// kept of a container that is gone (its pinned network namespace).
type Interfaces interface {
	Follow(cgroup uint64, netns string, names []string) (map[string]Iface, error)
	Unfollow(cgroup uint64)
	Forget(cgroup uint64)
}

// Engine keeps the kernel's policy maps in step with the policy set and the
// containers: it matches each container to the policies that select it and
// swaps policy sets without leaving any container under neither set.
type Engine struct {
	kern   Kernel
	caps   Capabilities
	ifaces Interfaces
	log    *slog.Logger

	mu         sync.Mutex
	set        []*compiled
	nextID     uint32
	generation uint64
	loadedAt   time.Time
	sources    []string
	rejected   []string // problems of the last refused set, nil after a good one
	names      map[uint32]policyName
	containers map[uint64]*applied // changed through setApplied
	// roots counts the containers with a registered root filesystem; read
	// without mu, on every file event of the cgroup-only tier.
	roots atomic.Int64
}

// applied is what the engine wrote for one container.
type applied struct {
	target Target
	member Member
	iface  map[string]Iface
	addrs  map[bindKey]bool
	ifidx  map[ifidxKey]bool
	// root is the root filesystem registered for the read-only rule, nil
	// when none is.
	root *RootFS
}

type policyName struct{ name, mode string }

type bindKey struct {
	policy uint32
	addr   netip.Addr
}

type ifidxKey struct {
	policy  uint32
	ifindex uint32
}

// NewEngine returns an engine with no policies. ifaces may be nil when no
// policy will bind interfaces (tests).
func NewEngine(kern Kernel, caps Capabilities, ifaces Interfaces, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{kern: kern, caps: caps, ifaces: ifaces, log: log, nextID: 1,
		names: make(map[uint32]policyName), containers: make(map[uint64]*applied)}
}

// NumberAfter makes the engine number its policies above id: the kernel
// may hold policies of an earlier daemon (pinned state), under which
// containers stay until each is switched to this engine's set.
func (e *Engine) NumberAfter(id uint32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if id >= e.nextID {
		e.nextID = id + 1
	}
}

// Quiesced runs fn with the ids of the set in force while the engine
// writes nothing: a sweep of what no container needs must not meet an
// entry written for a switch under way.
func (e *Engine) Quiesced(fn func(inForce map[uint32]bool) error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make(map[uint32]bool, len(e.set))
	for _, c := range e.set {
		ids[c.id] = true
	}
	return fn(ids)
}

// Status describes the policy state for `ringfence status`.
type Status struct {
	Generation uint64    `json:"generation"`
	LoadedAt   time.Time `json:"loaded_at,omitzero"`
	Sources    []string  `json:"sources,omitempty"`
	Policies   []string  `json:"policies"`
	// Rejected lists the problems of the last policy set that was refused;
	// the set in force is the one before it.
	Rejected []string `json:"rejected,omitempty"`
	// Enforced counts containers under at least one policy.
	Enforced int `json:"enforced_containers"`
	// Tracked counts the containers the engine knows, under a policy or not.
	Tracked int `json:"tracked_containers"`
}

// Status returns the engine's state.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Status{Generation: e.generation, LoadedAt: e.loadedAt, Sources: slices.Clone(e.sources),
		Rejected: slices.Clone(e.rejected), Policies: []string{}}
	for _, c := range e.set {
		st.Policies = append(st.Policies, c.policy.Name+" ("+c.policy.Spec.Mode+")")
	}
	for _, a := range e.containers {
		if len(a.member.Policies) > 0 {
			st.Enforced++
		}
	}
	st.Tracked = len(e.containers)
	return st
}

// Reject records a policy set that could not be read or was invalid; the
// set in force stays.
func (e *Engine) Reject(problems []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rejected = slices.Clone(problems)
}

// PolicyName names a policy id, of this set or an earlier one (a violation
// may be reported just after a swap).
func (e *Engine) PolicyName(id uint32) (name, mode string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if n, ok := e.names[id]; ok {
		return n.name, n.mode
	}
	return fmt.Sprintf("policy_%d", id), ""
}

// PoliciesOf names the policies that select the container of cgroup.
func (e *Engine) PoliciesOf(cgroup uint64) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, ok := e.containers[cgroup]
	if !ok {
		return nil
	}
	var out []string
	for _, id := range a.member.Policies {
		out = append(out, e.names[id].name)
	}
	return out
}

// Load replaces the policy set. The new policies are written under new ids,
// then each container's entry is switched in one update, then the old
// policies go: a container is under the old set or the new one at every
// instant. On any error nothing of the new set stays and the old one is in
// force.
func (e *Engine) Load(policies []RuntimePolicy, sources []string) (err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	defer func() {
		if err != nil {
			e.rejected = []string{err.Error()}
		}
	}()

	var next []*compiled
	undo := func() {
		for _, c := range next {
			if derr := e.kern.DeletePolicy(c.id, c.allow); derr != nil {
				e.log.Error("remove policy of a refused set", "policy", c.policy.Name, "error", derr)
			}
		}
	}
	for _, p := range policies {
		c, err := compile(p, e.nextID, e.caps)
		if err != nil {
			undo()
			return err
		}
		e.nextID++
		if err := e.kern.PutPolicy(c.id, c.kp, c.allow); err != nil {
			undo()
			return fmt.Errorf("policy %s: write to the kernel: %w", p.Name, err)
		}
		next = append(next, c)
		e.names[c.id] = policyName{p.Name, p.Spec.Mode}
	}

	// Switch every container; remember how to switch back.
	type switched struct {
		cg  uint64
		old *applied
	}
	var done []switched
	for cg, a := range e.containers {
		na, err := e.plan(a.target, next, a)
		if err == nil {
			err = e.write(na, a)
		}
		if err != nil {
			for _, s := range done {
				if rerr := e.write(s.old, e.containers[s.cg]); rerr != nil {
					e.log.Error("restore container rules", "cgroup", s.cg, "error", rerr)
				}
				e.setApplied(s.cg, s.old)
			}
			undo()
			return fmt.Errorf("container %s: %w", a.target.Name, err)
		}
		done = append(done, switched{cg, a})
		e.setApplied(cg, na)
		if a.member.Bind && !na.member.Bind && e.ifaces != nil {
			e.ifaces.Unfollow(cg)
		}
	}
	for _, c := range e.set {
		if err := e.kern.DeletePolicy(c.id, c.allow); err != nil {
			e.log.Error("remove replaced policy", "policy", c.policy.Name, "error", err)
		}
	}
	e.set = next
	e.generation++
	e.loadedAt = time.Now()
	e.sources = slices.Clone(sources)
	e.rejected = nil
	return nil
}

// Apply matches a container (new, or changed) to the policies and writes
// its entry. The entry is complete (addresses included) when it appears.
// It returns the entry written (no policies: none).
func (e *Engine) Apply(t Target) (Member, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.containers[t.CgroupID]
	na, err := e.plan(t, e.set, old)
	if err != nil {
		return Member{}, err
	}
	if err := e.write(na, old); err != nil {
		return Member{}, err
	}
	if !na.member.Bind && old != nil && old.member.Bind && e.ifaces != nil {
		e.ifaces.Unfollow(t.CgroupID)
	}
	// Kept under no policy too: a later policy set may select it.
	e.setApplied(t.CgroupID, na)
	return na.member, nil
}

// Remove forgets a container that is gone.
func (e *Engine) Remove(cgroup uint64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	old, ok := e.containers[cgroup]
	if !ok {
		return nil
	}
	e.setApplied(cgroup, nil)
	if e.ifaces != nil {
		e.ifaces.Forget(cgroup)
	}
	return e.write(&applied{target: old.target, member: Member{Owner: cgroup}}, old)
}

// InterfacesChanged updates the allowed addresses of a container whose
// interfaces changed.
func (e *Engine) InterfacesChanged(cgroup uint64, state map[string]Iface) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old, ok := e.containers[cgroup]
	if !ok {
		return
	}
	na := &applied{target: old.target, member: old.member, iface: state, root: old.root}
	e.bindTargets(na, e.byID(old.member.Policies))
	if err := e.write(na, old); err != nil {
		e.log.Error("update allowed addresses", "container", old.target.Name, "error", err)
		return
	}
	e.setApplied(cgroup, na)
}

// setApplied records what was written for the container of cgroup (nil:
// it is forgotten), keeping the count of registered roots; e.mu is held.
func (e *Engine) setApplied(cgroup uint64, a *applied) {
	if old := e.containers[cgroup]; old != nil && old.root != nil {
		e.roots.Add(-1)
	}
	if a == nil {
		delete(e.containers, cgroup)
		return
	}
	if a.root != nil {
		e.roots.Add(1)
	}
	e.containers[cgroup] = a
}

// HoldsRoots reports whether any container has its root filesystem
// registered, that is whether a write can break a read-only rule at all.
// It takes no lock: the cgroup-only tier asks it for every file event.
func (e *Engine) HoldsRoots() bool { return e.roots.Load() > 0 }

// readOnlyBreach names the strictest read-only policy of the container of
// cgroup whose rule a write of path (from the container's root) breaks,
// with its mode. unplaced is a write whose path is not known whole: no
// allowWrites entry can be said to hold it.
func (e *Engine) readOnlyBreach(cgroup uint64, path string, unplaced bool) (policy, mode string, ok bool) {
	a, found := e.containers[cgroup]
	if !found || !a.member.ReadOnly || !unplaced && (path == "" || path[0] != '/') {
		return "", "", false
	}
	best := ActionNone
	for _, c := range e.byID(a.member.Policies) {
		if c.kp.ReadOnly && (unplaced || !allows(c.allow, path)) && c.action > best {
			best, policy, mode = c.action, c.policy.Name, c.policy.Spec.Mode
		}
	}
	return policy, mode, best != ActionNone
}

// Breach is a would-deny of the read-only rule found in userspace.
type Breach struct {
	Policy, Mode, Reason string
}

// AuditWrite judges, for a tier where the kernel cannot judge writes, a
// write to path, and to target (the second path of a rename or link, ""
// when none), both from the root of the container of cgroup, against that
// container's read-only rules. It never denies: the breach is reported as a
// would-deny, and under an enforcing policy its reason says the tier cannot
// enforce it.
func (e *Engine) AuditWrite(cgroup uint64, path, target string) (Breach, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	policy, mode, ok := e.readOnlyBreach(cgroup, path, false)
	if !ok && target != "" {
		policy, mode, ok = e.readOnlyBreach(cgroup, target, false)
	}
	return breach(policy, mode, RuleReadOnly.Reason(), ok)
}

// AuditUnplaced is AuditWrite for a write by the container of cgroup whose
// object cannot be placed: its path was cut short (deeper or longer than
// the kernel reads). No allowWrites entry can be said to hold it, so it
// breaks the container's strictest read-only rule: fail closed, as the
// kernel's own judgement of a path too deep to know.
func (e *Engine) AuditUnplaced(cgroup uint64) (Breach, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	policy, mode, ok := e.readOnlyBreach(cgroup, "", true)
	return breach(policy, mode, RuleReadOnly.Reason()+" (its path not known whole: too deep, too long or out of the mount namespace)", ok)
}

// breach is the would-deny of policy in mode, when ok, its reason saying
// when the tier cannot enforce it.
func breach(policy, mode, reason string, ok bool) (Breach, bool) {
	if !ok {
		return Breach{}, false
	}
	b := Breach{Policy: policy, Mode: mode, Reason: reason}
	if mode == ModeEnforce {
		b.Reason += ": " + Unenforceable
	}
	return b, true
}

// Root returns the root filesystem of the container of cgroup, when one
// is registered (a read-only rule selects it).
func (e *Engine) Root(cgroup uint64) (RootFS, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if a, ok := e.containers[cgroup]; ok && a.root != nil {
		return *a.root, true
	}
	return RootFS{}, false
}

// RootHolding returns the container whose root filesystem, as visible on
// the host, holds the host path p, and p's path from that root.
func (e *Engine) RootHolding(p string) (cgroup uint64, rel string, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	best := -1
	for cg, a := range e.containers {
		if a.root == nil || a.root.Host == "" {
			continue
		}
		if r, in := below(p, a.root.Host); in && len(a.root.Host) > best {
			cgroup, rel, ok, best = cg, r, true, len(a.root.Host)
		}
	}
	return cgroup, rel, ok
}

// below reports whether p is dir or below it, and p's path from dir.
func below(p, dir string) (string, bool) {
	switch {
	case dir == "/":
		return p, true
	case p == dir:
		return "/", true
	case strings.HasPrefix(p, dir+"/"):
		return p[len(dir):], true
	}
	return "", false
}

func (e *Engine) byID(ids []uint32) []*compiled {
	var out []*compiled
	for _, c := range e.set {
		if slices.Contains(ids, c.id) {
			out = append(out, c)
		}
	}
	return out
}

// plan computes what a container's entries should be under set.
func (e *Engine) plan(t Target, set []*compiled, old *applied) (*applied, error) {
	var selected []*compiled
	for _, c := range set {
		if c.policy.Spec.Selector.Selects(t) {
			selected = append(selected, c)
		}
	}
	if len(selected) > MaxPoliciesPerContainer {
		return nil, fmt.Errorf("selected by %d policies, at most %d", len(selected), MaxPoliciesPerContainer)
	}
	na := &applied{target: t, member: verdictFor(t, selected)}
	if na.member.ReadOnly {
		if t.Root == nil && e.caps.ReadOnly {
			return nil, errors.New("a read-only rule selects it, but its root filesystem is not known: the kernel could not judge its writes")
		}
		na.root = t.Root
	}
	if na.member.Bind {
		var names []string
		for _, c := range selected {
			for _, n := range c.kp.Interfaces {
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
		if e.ifaces == nil {
			return nil, errors.New("an interface-binding policy selects it, but the sensor follows no interfaces")
		}
		state, err := e.ifaces.Follow(t.CgroupID, t.NetNS, names)
		if err != nil {
			// Keep what was known; with nothing known, no address is
			// allowed until the interfaces are (fail closed).
			e.log.Error("follow interfaces", "container", t.Name, "netns", t.NetNS, "error", err)
			if old != nil {
				state = old.iface
			}
		}
		na.iface = state
	}
	e.bindTargets(na, selected)
	return na, nil
}

// bindTargets fills the allowed addresses and interface indexes, and the
// member's UDP addresses.
func (e *Engine) bindTargets(na *applied, selected []*compiled) {
	na.addrs = make(map[bindKey]bool)
	na.ifidx = make(map[ifidxKey]bool)
	var binds int
	for _, c := range selected {
		if !c.kp.Bind {
			continue
		}
		binds++
		for _, name := range c.kp.Interfaces {
			st := na.iface[name]
			for _, a := range st.Addrs {
				na.addrs[bindKey{c.id, a.Unmap()}] = true
			}
			if st.Index != 0 {
				na.ifidx[ifidxKey{c.id, st.Index}] = true
			}
		}
	}
	na.member.UDP4, na.member.UDP6 = udpAddrs(na.addrs, binds)
}

// udpAddrs picks, per family, the lowest address that all binds bind
// policies allow.
func udpAddrs(addrs map[bindKey]bool, binds int) (v4, v6 netip.Addr) {
	allowedBy := map[netip.Addr]int{}
	for k := range addrs {
		allowedBy[k.addr]++
	}
	for a, n := range allowedBy {
		if n != binds || binds == 0 {
			continue
		}
		switch {
		case a.Is4() && (!v4.IsValid() || a.Less(v4)):
			v4 = a
		case a.Is6() && (!v6.IsValid() || a.Less(v6)):
			v6 = a
		}
	}
	return v4, v6
}

// write moves the kernel from old (may be nil) to na: addresses and the
// root filesystem first, then the member entry in one update, then what
// is stale.
func (e *Engine) write(na, old *applied) error {
	cg := na.target.CgroupID
	var oldRoot *RootFS
	if old != nil {
		oldRoot = old.root
	}
	if na.root != nil && !sameRoot(na.root, oldRoot) {
		if err := e.kern.PutRoot(cg, *na.root); err != nil {
			return err
		}
	}
	var errs []error
	for k := range na.addrs {
		if old == nil || !old.addrs[k] {
			errs = append(errs, e.kern.PutBindAddr(cg, k.policy, k.addr))
		}
	}
	for k := range na.ifidx {
		if old == nil || !old.ifidx[k] {
			errs = append(errs, e.kern.PutBindIfindex(cg, k.policy, k.ifindex))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(na.member.Policies) > 0 {
		if old == nil || !sameMember(old.member, na.member) {
			if err := e.kern.PutMember(cg, na.member); err != nil {
				return err
			}
		}
	} else if old != nil && len(old.member.Policies) > 0 {
		if err := e.kern.DeleteMember(cg); err != nil {
			return err
		}
	}
	if oldRoot != nil && !sameRoot(na.root, oldRoot) {
		errs = append(errs, e.kern.DeleteRoot(cg, *oldRoot))
	}
	if old != nil {
		for k := range old.addrs {
			if !na.addrs[k] {
				errs = append(errs, e.kern.DeleteBindAddr(cg, k.policy, k.addr))
			}
		}
		for k := range old.ifidx {
			if !na.ifidx[k] {
				errs = append(errs, e.kern.DeleteBindIfindex(cg, k.policy, k.ifindex))
			}
		}
	}
	return errors.Join(errs...)
}

func sameRoot(a, b *RootFS) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func sameMember(a, b Member) bool {
	return a.Owner == b.Owner && a.ReadOnly == b.ReadOnly && a.Bind == b.Bind && slices.Equal(a.Policies, b.Policies) &&
		a.ExecPolicy == b.ExecPolicy && a.ExecRule == b.ExecRule && a.ExecAction == b.ExecAction &&
		a.UDP4 == b.UDP4 && a.UDP6 == b.UDP6
}
