package kernel

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/ringfence/ringfence/bpf"
	"github.com/ringfence/ringfence/test/testenv"
)

func TestDecideTier(t *testing.T) {
	cases := []struct {
		name       string
		lsms       []string
		loadErr    string
		want       Tier
		reasonHave string
	}{
		{"loads and active", []string{"capability", "bpf"}, "", TierFull, "load"},
		{"eperm and active", []string{"lockdown", "bpf"}, "operation not permitted", TierCgroupOnly, "operation not permitted"},
		{"loads but inactive", []string{"capability", "apparmor"}, "", TierCgroupOnly, "not in the active LSM list"},
		{"neither", []string{"capability"}, "EPERM", TierCgroupOnly, "not an active LSM"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, reason := decideTier(c.lsms, c.loadErr)
			if got != c.want || !strings.Contains(reason, c.reasonHave) {
				t.Fatalf("decideTier = %s, %q; want %s with %q", got, reason, c.want, c.reasonHave)
			}
		})
	}
}

// TestProbeAndLoad loads the tier the probe chose and checks every program of
// that tier is attached. On the project's hosts BPF LSM cannot load, so the
// probe must say cgroup-only and why; in the test VMs it must say full.
func TestProbeAndLoad(t *testing.T) {
	testenv.Privileged(t)
	p, err := ProbeTier()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tier %s: %s", p.Tier, p.Reason)
	if testenv.InVM() && p.Tier != TierFull {
		t.Fatalf("inside the test VM the tier must be full, got %s: %s", p.Tier, p.Reason)
	}
	if p.Reason == "" {
		t.Fatal("probe gave no reason")
	}
	s, err := Load(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kernelBTF, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	var lsm int
	listed := map[string]bool{}
	for _, h := range s.Hooks() {
		hook := strings.TrimPrefix(h.Hook, "lsm/")
		listed[hook] = true
		// Only an optional hook the kernel lacks may be left out, and it
		// is listed with why.
		lacking := optionalHook(hook) && !hasFunc(kernelBTF, "bpf_lsm_"+hook)
		if h.Attached == lacking || (!h.Attached && !strings.Contains(h.Error, "absent from this kernel")) {
			t.Errorf("%s (%s): attached=%v error=%q; the kernel lacks it: %v", h.Program, h.Hook, h.Attached, h.Error, lacking)
		}
		if lacking {
			t.Logf("%s not attached: %s", h.Hook, h.Error)
		}
		if h.Attached && strings.HasPrefix(h.Hook, "lsm/") {
			lsm++
		}
	}
	if p.Tier == TierFull {
		for hook := range optionalHooks {
			if !listed[hook] {
				t.Errorf("optional hook %s is not listed", hook)
			}
		}
	}
	if (p.Tier == TierFull) != (lsm > 0) {
		t.Fatalf("tier %s with %d LSM programs attached", p.Tier, lsm)
	}
	if _, err := s.Drops(); err != nil {
		t.Fatal(err)
	}
}

// fakeKernelBTF is the BTF of a kernel whose only functions are funcs.
func fakeKernelBTF(t *testing.T, funcs ...string) *btf.Spec {
	t.Helper()
	b, err := btf.NewBuilder(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ret := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	for _, f := range funcs {
		if _, err := b.Add(&btf.Func{Name: f, Type: &btf.FuncProto{Return: ret}, Linkage: btf.GlobalFunc}); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestOptionalHooksSkipped configures the full tier for a kernel without
// the hooks added in 6.2 (as 6.1) and one with them: the missing ones are
// dropped and returned with their reason, nothing else is.
func TestOptionalHooksSkipped(t *testing.T) {
	for _, c := range []struct {
		name    string
		funcs   []string
		skipped []string
	}{
		{"6.1", []string{"bpf_lsm_inode_setattr"}, []string{"lsm/file_truncate", "lsm/inode_remove_acl", "lsm/inode_set_acl"}},
		{"6.12", []string{"bpf_lsm_inode_setattr", "bpf_lsm_file_truncate", "bpf_lsm_inode_set_acl", "bpf_lsm_inode_remove_acl"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec, err := bpf.LoadSensor()
			if err != nil {
				t.Fatal(err)
			}
			skipped, err := configure(spec, TierFull, fakeKernelBTF(t, c.funcs...))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, h := range skipped {
				got = append(got, h.Hook)
				if h.Attached || !strings.Contains(h.Error, "absent from this kernel") || !strings.Contains(h.Error, "6.2") {
					t.Errorf("skipped hook %+v: want not attached, with its reason", h)
				}
				if _, ok := spec.Programs[h.Program]; ok {
					t.Errorf("%s skipped but still in the spec", h.Program)
				}
			}
			if strings.Join(got, ",") != strings.Join(c.skipped, ",") {
				t.Fatalf("skipped %v, want %v", got, c.skipped)
			}
			var lsm int
			for _, ps := range spec.Programs {
				if ps.Type == ebpf.LSM {
					lsm++
				}
			}
			if lsm == 0 {
				t.Fatal("no LSM program left for the full tier")
			}
		})
	}
}

func TestSyscallName(t *testing.T) {
	for nr, want := range map[uint32]string{257: "257", 0: "0", 1<<31 | 5: "ia32:5", 1<<31 | 85: "ia32:85"} {
		if got := SyscallName(nr); got != want {
			t.Errorf("SyscallName(%#x) = %q, want %q", nr, got, want)
		}
	}
}
