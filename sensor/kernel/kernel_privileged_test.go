package kernel

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/ringfence/ringfence/test/testenv"
)

// TestPrivilegedProbeAndLoad loads the tier the probe chose and checks every program of
// that tier is attached. On the project's hosts BPF LSM cannot load, so the
// probe must say cgroup-only and why; in the test VMs it must say full.
func TestPrivilegedProbeAndLoad(t *testing.T) {
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
	if err := ProbeLoad(); err != nil {
		t.Fatalf("ProbeLoad as root: %v", err)
	}
	s, err := Load(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
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
		for _, hook := range optionalHooks() {
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
