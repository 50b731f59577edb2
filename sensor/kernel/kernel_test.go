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

func TestParseMountInfo(t *testing.T) {
	in := `22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
35 22 0:30 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw
40 22 0:31 / /mnt/with\040space rw - tmpfs tmpfs rw
`
	mounts, err := ParseMountInfo(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	root, err := Cgroup2Root(mounts)
	if err != nil || root != "/sys/fs/cgroup/unified" {
		t.Fatalf("Cgroup2Root = %q, %v", root, err)
	}
	if mounts[2].Point != "/mnt/with space" {
		t.Fatalf("escaped mount point = %q", mounts[2].Point)
	}
	if _, err := ParseMountInfo(strings.NewReader("garbage line\n")); err == nil {
		t.Fatal("malformed line accepted")
	}
	if _, err := Cgroup2Root(mounts[:1]); err == nil {
		t.Fatal("no cgroup2: want error")
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
