package kernel

import (
	"strings"
	"testing"

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
	var lsm int
	for _, h := range s.Hooks() {
		if !h.Attached {
			t.Errorf("%s not attached: %s", h.Program, h.Error)
		}
		if strings.HasPrefix(h.Hook, "lsm/") {
			lsm++
		}
	}
	if (p.Tier == TierFull) != (lsm > 0) {
		t.Fatalf("tier %s with %d LSM programs attached", p.Tier, lsm)
	}
	if _, err := s.Drops(); err != nil {
		t.Fatal(err)
	}
}
