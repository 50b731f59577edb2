package kernel

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ringfence/ringfence/bpf"
	"github.com/ringfence/ringfence/sensor/hostfs"
)

// Tier is a kernel capability tier: what the sensor can observe and enforce.
type Tier string

// The tiers, from most to least capable.
const (
	// TierFull has working BPF LSM: file and exec rules are enforced in LSM hooks.
	TierFull Tier = "full"
	// TierCgroupOnly has cgroup v2 hooks and tracepoints but no usable BPF LSM.
	TierCgroupOnly Tier = "cgroup-only"
)

// Probe is the outcome of the start-up capability probe.
type Probe struct {
	Tier Tier `json:"tier"`
	// Reason says why this tier was chosen, in words an operator can act on.
	Reason string `json:"reason"`
	// ActiveLSMs is the content of /sys/kernel/security/lsm.
	ActiveLSMs []string `json:"active_lsms"`
	// LSMLoadError is why the probe LSM program did not load, if it did not.
	LSMLoadError string `json:"lsm_load_error,omitempty"`
	// Cgroup2Root is where the cgroup v2 hierarchy is mounted.
	Cgroup2Root string `json:"cgroup2_root"`
	// IA32 says whether this machine runs 32-bit syscalls (a probe, never
	// assumed: hypervisors of one machine kind differ).
	IA32 IA32 `json:"ia32"`
}

// ProbeTier mounts what is missing and decides the tier. The full tier needs
// both that an LSM program loads and that "bpf" is an active LSM: a program
// can load and attach on a kernel where the bpf LSM is not active, and then it
// never runs. ProbeTier returns an error only when no tier is possible.
func ProbeTier() (Probe, error) {
	if err := EnsureMounts(); err != nil {
		return Probe{}, err
	}
	var p Probe
	var err error
	if p.Cgroup2Root, err = hostfs.Cgroup2Root(); err != nil {
		return Probe{}, err
	}
	raw, err := os.ReadFile(SecurityFSPath + "/lsm")
	if err != nil {
		return Probe{}, fmt.Errorf("read active LSMs: %w", err)
	}
	p.ActiveLSMs = strings.Split(strings.TrimSpace(string(raw)), ",")
	if err := loadProbeProgram(); err != nil {
		p.LSMLoadError = err.Error()
	}
	p.Tier, p.Reason = decideTier(p.ActiveLSMs, p.LSMLoadError)
	if p.IA32, err = ProbeIA32(); err != nil {
		// Unknown: what is open on a machine that runs them is said.
		p.IA32 = IA32{Allowed: true, How: err.Error()}
	}
	return p, nil
}

// decideTier is the pure decision of ProbeTier.
func decideTier(activeLSMs []string, lsmLoadError string) (Tier, string) {
	active := slices.Contains(activeLSMs, "bpf")
	switch {
	case lsmLoadError == "" && active:
		return TierFull, "BPF LSM programs load and bpf is an active LSM"
	case lsmLoadError != "" && active:
		return TierCgroupOnly, "BPF LSM programs cannot be loaded on this kernel (" + lsmLoadError + "), although bpf is an active LSM"
	case lsmLoadError == "":
		return TierCgroupOnly, "bpf is not in the active LSM list (" + strings.Join(activeLSMs, ",") + "): LSM programs would attach and never run; boot with lsm=...,bpf"
	default:
		return TierCgroupOnly, "BPF LSM programs cannot be loaded on this kernel (" + lsmLoadError + ") and bpf is not an active LSM"
	}
}

// loadProbeProgram loads (and immediately closes) the smallest LSM program.
func loadProbeProgram() error {
	spec, err := bpf.LoadSensor()
	if err != nil {
		return fmt.Errorf("load sensor spec: %w", err)
	}
	ps, ok := spec.Programs[probeProgram]
	if !ok {
		return errors.New("probe program missing from the sensor object")
	}
	prog, err := ebpf.NewProgram(ps)
	if err != nil {
		// cilium/ebpf appends a memlock hint to EPERM that does not apply here.
		if errors.Is(err, os.ErrPermission) {
			return errors.New("BPF_PROG_LOAD of an lsm program: operation not permitted")
		}
		return fmt.Errorf("BPF_PROG_LOAD of an lsm program: %w", err)
	}
	return prog.Close()
}

// ProbeLoad checks that this process may load the kinds of program every
// tier attaches: a tracing program (CAP_BPF and CAP_PERFMON, or
// CAP_SYS_ADMIN) and a cgroup socket program (CAP_BPF and CAP_NET_ADMIN,
// or CAP_SYS_ADMIN). A daemon in standby asks it before it says it is
// ready, so that one which could not take over never replaces the one in
// charge. Each program is two instructions, closed at once.
func ProbeLoad() error {
	for _, p := range []struct {
		what string
		spec *ebpf.ProgramSpec
	}{
		{"a tracing program (CAP_BPF and CAP_PERFMON)", &ebpf.ProgramSpec{Type: ebpf.RawTracepoint}},
		{"a cgroup socket program (CAP_BPF and CAP_NET_ADMIN)", &ebpf.ProgramSpec{Type: ebpf.CGroupSockAddr, AttachType: ebpf.AttachCGroupInet4Bind}},
	} {
		p.spec.License = "GPL"
		p.spec.Instructions = asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}
		prog, err := ebpf.NewProgram(p.spec)
		if err != nil {
			if errors.Is(err, os.ErrPermission) {
				return fmt.Errorf("BPF_PROG_LOAD of %s: operation not permitted", p.what)
			}
			return fmt.Errorf("BPF_PROG_LOAD of %s: %w", p.what, err)
		}
		prog.Close()
	}
	return nil
}
