package enforce

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// fakeKernel is a map-backed Kernel that checks, at every member update,
// that the entry only names policies present in the kernel: the property
// an atomic swap must keep.
type fakeKernel struct {
	t        *testing.T
	policies map[uint32]KernelPolicy
	allow    map[uint32][]AllowWrite
	members  map[uint64]Member
	addrs    map[string]bool
	ifidx    map[string]bool
	failPut  uint32            // PutPolicy of this id fails
	failMem  uint64            // PutMember of this cgroup fails
	roots    map[RootFS]uint64 // registered roots, with their container
}

func newFakeKernel(t *testing.T) *fakeKernel {
	return &fakeKernel{t: t, policies: map[uint32]KernelPolicy{}, allow: map[uint32][]AllowWrite{},
		members: map[uint64]Member{}, addrs: map[string]bool{}, ifidx: map[string]bool{}, roots: map[RootFS]uint64{}}
}

func (k *fakeKernel) PutPolicy(id uint32, p KernelPolicy, allow []AllowWrite) error {
	if id == k.failPut {
		return fmt.Errorf("map full")
	}
	k.policies[id] = p
	k.allow[id] = allow
	return nil
}

func (k *fakeKernel) DeletePolicy(id uint32, _ []AllowWrite) error {
	for cg, m := range k.members {
		if slices.Contains(m.Policies, id) {
			k.t.Errorf("policy %d deleted while cgroup %d is under it", id, cg)
		}
	}
	delete(k.policies, id)
	delete(k.allow, id)
	return nil
}

func (k *fakeKernel) PutMember(cg uint64, m Member) error {
	if cg == k.failMem {
		return fmt.Errorf("map full")
	}
	for _, id := range m.Policies {
		if _, ok := k.policies[id]; !ok {
			k.t.Errorf("cgroup %d put under policy %d, which the kernel does not have", cg, id)
		}
	}
	if _, ok := k.rootOf(cg); m.ReadOnly && !ok && len(k.roots) > 0 {
		k.t.Errorf("cgroup %d under a read-only rule before its root was registered", cg)
	}
	k.members[cg] = m
	return nil
}

func (k *fakeKernel) DeleteMember(cg uint64) error { delete(k.members, cg); return nil }
func (k *fakeKernel) PutBindAddr(cg uint64, p uint32, a netip.Addr) error {
	k.addrs[fmt.Sprint(cg, p, a)] = true
	return nil
}
func (k *fakeKernel) DeleteBindAddr(cg uint64, p uint32, a netip.Addr) error {
	delete(k.addrs, fmt.Sprint(cg, p, a))
	return nil
}
func (k *fakeKernel) PutBindIfindex(cg uint64, p uint32, i uint32) error {
	k.ifidx[fmt.Sprint(cg, p, i)] = true
	return nil
}
func (k *fakeKernel) DeleteBindIfindex(cg uint64, p uint32, i uint32) error {
	delete(k.ifidx, fmt.Sprint(cg, p, i))
	return nil
}

// PutRoot checks that a container under a read-only rule has a root
// registered before its entry is written (see PutMember).
func (k *fakeKernel) PutRoot(cg uint64, r RootFS) error {
	k.roots[r] = cg
	return nil
}

func (k *fakeKernel) DeleteRoot(cg uint64, r RootFS) error {
	if got, ok := k.roots[r]; !ok || got != cg {
		k.t.Errorf("cgroup %d: delete of root %+v, registered for %d", cg, r, got)
	}
	delete(k.roots, r)
	return nil
}

// rootOf returns the root registered for a container.
func (k *fakeKernel) rootOf(cg uint64) (RootFS, bool) {
	for r, owner := range k.roots {
		if owner == cg {
			return r, true
		}
	}
	return RootFS{}, false
}

type fakeIfaces map[string]Iface

func (f fakeIfaces) Follow(uint64, string, []string) (map[string]Iface, error) { return f, nil }
func (f fakeIfaces) Unfollow(uint64)                                           {}
func (f fakeIfaces) Forget(uint64)                                             {}

func mustParse(t *testing.T, doc string) []RuntimePolicy {
	t.Helper()
	ps, problems := Parse("test.yaml", []byte(doc))
	if len(problems) > 0 {
		t.Fatalf("parse: %v", problems)
	}
	return ps
}

const twoPolicies = `
apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: ro-audit}
spec:
  mode: audit
  readOnlyRootFilesystem:
    allowWrites: ["/tmp/**", "/run/app.pid"]
---
apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: web}
spec:
  mode: enforce
  selector: {images: ["registry.internal/web/*"], labels: {app: web}}
  readOnlyRootFilesystem: {}
  bindInterfaces: {interfaces: [eth0], ports: ["8080"]}
  allowedRegistries: [registry.internal]
`

func TestEngineCombinesToStrictest(t *testing.T) {
	k := newFakeKernel(t)
	ifs := fakeIfaces{"eth0": {Index: 2, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2")}}}
	e := NewEngine(k, Capabilities{ReadOnly: true, Bind: true}, ifs, nil)
	if err := e.Load(mustParse(t, twoPolicies), nil); err != nil {
		t.Fatal(err)
	}
	web := Target{CgroupID: 10, Name: "web-1", Image: "registry.internal/web/app:1", Labels: map[string]string{"app": "web"}, Root: &RootFS{Dev: 40, Path: "/"}}
	other := Target{CgroupID: 11, Name: "db", Image: "postgres", Root: &RootFS{Dev: 41, Path: "/"}}
	for _, tg := range []Target{web, other} {
		if _, err := e.Apply(tg); err != nil {
			t.Fatal(err)
		}
	}
	m := k.members[10]
	if len(m.Policies) != 2 || !m.ReadOnly || !m.Bind || m.ExecAction != ActionNone {
		t.Errorf("web member = %+v", m)
	}
	if len(k.addrs) != 2 || len(k.ifidx) != 1 {
		t.Errorf("addresses %v, ifindexes %v", k.addrs, k.ifidx)
	}
	if m.UDP4 != netip.MustParseAddr("10.0.0.2") || m.UDP6 != netip.MustParseAddr("fd00::2") {
		t.Errorf("web UDP addresses %v %v, want eth0's", m.UDP4, m.UDP6)
	}
	// postgres is docker.io/library/postgres: only ro-audit selects it.
	if m := k.members[11]; len(m.Policies) != 1 || m.Bind {
		t.Errorf("db member = %+v", m)
	}
	// The strictest read-only verdict: web's enforce rule forbids /tmp too.
	if p, mode, ok := e.readOnlyBreach(10, "/tmp/x", false); !ok || p != "web" || mode != "enforce" {
		t.Errorf("web /tmp/x: %q %q %v", p, mode, ok)
	}
	if _, _, ok := e.readOnlyBreach(11, "/tmp/x", false); ok {
		t.Error("db /tmp/x: breach under an allowWrites prefix")
	}
	if _, _, ok := e.readOnlyBreach(11, "/run/app.pid", false); ok {
		t.Error("db /run/app.pid: breach of an exact allowWrites entry")
	}
	if p, _, ok := e.readOnlyBreach(11, "/run/app.pid2", false); !ok || p != "ro-audit" {
		t.Errorf("db /run/app.pid2: %q %v", p, ok)
	}
	for _, c := range []struct {
		name         string
		cgroup       uint64
		path, target string
		want         Breach
		breach       bool
	}{
		{"enforcing policy: not enforceable here", 10, "/etc/passwd", "", Breach{"web", "enforce", "write to the container's read-only root filesystem: not enforceable on this kernel"}, true},
		{"audit policy", 11, "/etc/passwd", "", Breach{"ro-audit", "audit", "write to the container's read-only root filesystem"}, true},
		{"allowed path, forbidden target", 11, "/tmp/a", "/etc/b", Breach{"ro-audit", "audit", "write to the container's read-only root filesystem"}, true},
		{"allowed path and target", 11, "/tmp/a", "/tmp/b", Breach{}, false},
		{"no target", 11, "/tmp/a", "", Breach{}, false},
		{"unknown container", 99, "/etc/passwd", "", Breach{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got, ok := e.AuditWrite(c.cgroup, c.path, c.target); got != c.want || ok != c.breach {
				t.Errorf("AuditWrite = %+v %v, want %+v %v", got, ok, c.want, c.breach)
			}
		})
	}
	// A write whose path was cut short: the strictest read-only rule, even
	// for the db, whose allowWrites hold /tmp and /run/app.pid.
	cut := "write to the container's read-only root filesystem (its path not known whole: too deep, too long or out of the mount namespace)"
	for _, c := range []struct {
		cgroup uint64
		want   Breach
		breach bool
	}{
		{10, Breach{"web", "enforce", cut + ": not enforceable on this kernel"}, true},
		{11, Breach{"ro-audit", "audit", cut}, true},
		{99, Breach{}, false},
	} {
		if got, ok := e.AuditUnplaced(c.cgroup); got != c.want || ok != c.breach {
			t.Errorf("AuditUnplaced(%d) = %+v %v, want %+v %v", c.cgroup, got, ok, c.want, c.breach)
		}
	}
}

func TestEngineRegistriesAndPrivileged(t *testing.T) {
	k := newFakeKernel(t)
	e := NewEngine(k, Capabilities{}, nil, nil)
	err := e.Load(mustParse(t, `
apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: prov}
spec: {mode: enforce, allowedRegistries: [docker.io]}
---
apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: priv}
spec: {mode: audit, denyPrivileged: true}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		t    Target
		rule Rule
		act  Action
	}{
		{Target{CgroupID: 1, Image: "busybox"}, 0, ActionNone},
		{Target{CgroupID: 2, Image: "ghcr.io/x/y:1"}, RuleAllowedRegistries, ActionDeny},
		{Target{CgroupID: 3, Image: "busybox", Privileged: true}, RuleDenyPrivileged, ActionAudit},
		{Target{CgroupID: 4, Image: "quay.io/a/b", Privileged: true}, RuleAllowedRegistries, ActionDeny},
		{Target{CgroupID: 5, Image: ""}, RuleAllowedRegistries, ActionDeny}, // provenance unknown
	}
	for _, c := range cases {
		if _, err := e.Apply(c.t); err != nil {
			t.Fatal(err)
		}
		m := k.members[c.t.CgroupID]
		if m.ExecRule != c.rule || m.ExecAction != c.act {
			t.Errorf("%+v: exec rule %v action %v, want %v %v", c.t, m.ExecRule, m.ExecAction, c.rule, c.act)
		}
	}
}

func TestEngineSwapIsAtomicAndRefusalKeepsOld(t *testing.T) {
	k := newFakeKernel(t)
	e := NewEngine(k, Capabilities{ReadOnly: true}, nil, nil)
	v1 := mustParse(t, `
apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: v1}
spec: {mode: enforce, readOnlyRootFilesystem: {}}
`)
	if err := e.Load(v1, []string{"a.yaml"}); err != nil {
		t.Fatal(err)
	}
	for cg := uint64(1); cg <= 50; cg++ {
		if _, err := e.Apply(Target{CgroupID: cg, Name: fmt.Sprint("c", cg), Root: &RootFS{Dev: uint32(cg), Path: "/"}}); err != nil {
			t.Fatal(err)
		}
	}
	v2 := mustParse(t, strings.ReplaceAll(`
apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: v2}
spec: {mode: audit, readOnlyRootFilesystem: {allowWrites: ["/tmp/**"]}}
`, "\t", ""))
	// fakeKernel fails the test if a member ever names a missing policy
	// or a policy goes while a member names it.
	if err := e.Load(v2, []string{"a.yaml"}); err != nil {
		t.Fatal(err)
	}
	if st := e.Status(); st.Generation != 2 || len(st.Policies) != 1 || st.Policies[0] != "v2 (audit)" || st.Enforced != 50 {
		t.Errorf("status after swap = %+v", st)
	}
	if len(k.policies) != 1 {
		t.Errorf("kernel holds %d policies after the swap, want 1", len(k.policies))
	}

	// A set that fails half-way is undone: v2 stays everywhere.
	k.failMem = 25
	if err := e.Load(v1, nil); err == nil {
		t.Fatal("Load succeeded although a member update failed")
	}
	k.failMem = 0
	st := e.Status()
	if st.Generation != 2 || len(st.Rejected) != 1 || st.Policies[0] != "v2 (audit)" {
		t.Errorf("status after a refused set = %+v", st)
	}
	if len(k.policies) != 1 {
		t.Errorf("kernel holds %d policies after a refused set, want 1", len(k.policies))
	}
	v2id := k.members[1].Policies[0]
	for cg, m := range k.members {
		if len(m.Policies) != 1 || m.Policies[0] != v2id {
			t.Errorf("cgroup %d under %v after a refused set, want [%d]", cg, m.Policies, v2id)
		}
	}

	// Removing the container removes its entry.
	if err := e.Remove(7); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.members[7]; ok {
		t.Error("member entry outlived Remove")
	}
}

func TestImageNormalisation(t *testing.T) {
	for _, c := range []struct{ ref, name, reg string }{
		{"busybox", "docker.io/library/busybox", "docker.io"},
		{"busybox:1.36", "docker.io/library/busybox", "docker.io"},
		{"ringfence.test/busybox:latest", "ringfence.test/busybox", "ringfence.test"},
		{"localhost:5000/a/b@sha256:" + strings.Repeat("a", 64), "localhost:5000/a/b", "localhost:5000"},
	} {
		img, err := ParseImage(c.ref)
		if err != nil || img.Name != c.name || img.Registry != c.reg {
			t.Errorf("ParseImage(%q) = %+v, %v", c.ref, img, err)
		}
	}
	img, _ := ParseImage("busybox")
	for pat, want := range map[string]bool{"busybox": true, "docker.io/library/*": true, "docker.io/*": false, "*/library/busybox:*": true, "alpine": false} {
		if got := newImageGlob(pat).matches(img); got != want {
			t.Errorf("%q matches busybox = %v, want %v", pat, got, want)
		}
	}
}

// TestEngineRoots: a container under a read-only rule has its root
// filesystem registered before its entry, taken back when no read-only rule
// selects it any more; without a known root the rule cannot apply where the
// kernel enforces it, and the apply fails rather than leave it unjudged.
func TestEngineRoots(t *testing.T) {
	k := newFakeKernel(t)
	e := NewEngine(k, Capabilities{ReadOnly: true}, nil, nil)
	if err := e.Load(mustParse(t, twoPolicies), nil); err != nil {
		t.Fatal(err)
	}
	root := RootFS{Dev: 7, Path: "/var/lib/snap/12/fs"}
	if _, err := e.Apply(Target{CgroupID: 20, Name: "db", Image: "postgres", Root: &root}); err != nil {
		t.Fatal(err)
	}
	if got, _ := k.rootOf(20); got != root {
		t.Fatalf("root %+v registered, want %+v", got, root)
	}
	if !e.HoldsRoots() {
		t.Fatal("HoldsRoots is false with a root registered")
	}
	moved := RootFS{Dev: 8, Path: "/"}
	if _, err := e.Apply(Target{CgroupID: 20, Name: "db", Image: "postgres", Root: &moved}); err != nil || len(k.roots) != 1 || k.roots[moved] != 20 {
		t.Fatalf("roots after a change: %+v, %v", k.roots, err)
	}
	if _, err := e.Apply(Target{CgroupID: 21, Name: "db2", Image: "postgres"}); err == nil || !strings.Contains(err.Error(), "root filesystem is not known") {
		t.Fatalf("a read-only container without a root: %v", err)
	}
	if _, ok := k.members[21]; ok {
		t.Fatal("a container whose rule could not apply has an entry")
	}
	if err := e.Remove(20); err != nil {
		t.Fatal(err)
	}
	if len(k.roots) != 0 {
		t.Fatalf("roots left after the container went: %v", k.roots)
	}
	// Counted once per container, however often its root changed.
	if e.HoldsRoots() {
		t.Fatal("HoldsRoots is true with no root registered")
	}
	if _, err := e.Apply(Target{CgroupID: 23, Name: "db4", Image: "postgres", Root: &root}); err != nil || !e.HoldsRoots() {
		t.Fatalf("HoldsRoots after another container: %v, %v", e.HoldsRoots(), err)
	}
	if err := e.Load(nil, nil); err != nil || e.HoldsRoots() || len(k.roots) != 0 {
		t.Fatalf("a set with no read-only rule leaves roots: %v, %v, %v", e.HoldsRoots(), k.roots, err)
	}
	// Where the kernel cannot enforce the rule, no root is needed.
	audit := NewEngine(newFakeKernel(t), Capabilities{}, nil, nil)
	if err := audit.Load(mustParse(t, twoPolicies), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Apply(Target{CgroupID: 22, Name: "db3", Image: "postgres"}); err != nil {
		t.Fatalf("cgroup-only tier: %v", err)
	}
}

func TestRootHolding(t *testing.T) {
	k := newFakeKernel(t)
	e := NewEngine(k, Capabilities{ReadOnly: true}, nil, nil)
	if err := e.Load(mustParse(t, twoPolicies), nil); err != nil {
		t.Fatal(err)
	}
	for cg, host := range map[uint64]string{30: "/run/c/30/rootfs", 31: "/run/c/31/rootfs", 32: ""} {
		if _, err := e.Apply(Target{CgroupID: cg, Name: "db", Image: "postgres", Root: &RootFS{Dev: uint32(cg), Path: "/", Host: host}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		p   string
		cg  uint64
		rel string
		ok  bool
	}{
		{"/run/c/30/rootfs/etc/passwd", 30, "/etc/passwd", true},
		{"/run/c/31/rootfs", 31, "/", true},
		{"/run/c/30/rootfsx/etc", 0, "", false},
		{"/etc/passwd", 0, "", false},
	} {
		if cg, rel, ok := e.RootHolding(c.p); cg != c.cg || rel != c.rel || ok != c.ok {
			t.Errorf("RootHolding(%q) = %d %q %v, want %d %q %v", c.p, cg, rel, ok, c.cg, c.rel, c.ok)
		}
	}
	if r, ok := e.Root(30); !ok || r.Host != "/run/c/30/rootfs" {
		t.Errorf("Root(30) = %+v %v", r, ok)
	}
}
