package posture

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Severities: how much a failed check weakens the container's isolation from
// the node.
const (
	SeverityHigh   = "high"
	SeverityMedium = "medium"
	SeverityLow    = "low"
	// SeverityUnknown is the severity of the CheckSpecUnknown finding only.
	SeverityUnknown = "unknown"
)

// CheckSpecUnknown is the check of the single finding Evaluate returns when
// the spec is unknown (nil): no check could be evaluated, and a container
// whose posture is unknown must not look like one that passes every check.
const CheckSpecUnknown = "spec"

// Check is one benchmark recommendation that Evaluate tests.
type Check struct {
	// ID is the recommendation's number in the CIS Docker Benchmark
	// v1.6.0, such as "5.10".
	ID string `json:"id"`
	// Title is the recommendation's title in the benchmark.
	Title string `json:"title"`
	// Severity is SeverityHigh, SeverityMedium or SeverityLow.
	Severity string `json:"severity"`
}

// Finding is a check that a container fails.
type Finding struct {
	// Check is the failed check's ID, or CheckSpecUnknown.
	Check string `json:"check"`
	// Title and Severity are the check's.
	Title    string `json:"title"`
	Severity string `json:"severity"`
	// Detail says what in the spec fails the check.
	Detail string `json:"detail"`
}

// Options adjusts Evaluate. The zero value is what the package-level
// Evaluate uses.
type Options struct {
	// RuntimeSockets are container runtime API sockets that check 5.32
	// looks for besides the well-known ones (/run/containerd/containerd.sock,
	// /var/run/docker.sock, ...): a node's own --containerd-socket, say.
	RuntimeSockets []string
}

// rule is a Check with its test.
type rule struct {
	Check
	// eval returns why s fails the check, or "" when it passes.
	eval func(s *specs.Spec, o Options) string
}

// rules are the checks in benchmark order. Read only.
var rules = []rule{
	{Check{"4.1", "Ensure that a user for the container has been created", SeverityMedium}, runsAsRoot},
	{Check{"5.4", "Ensure that Linux kernel capabilities are restricted within containers", SeverityMedium}, addedCapabilities},
	{Check{"5.5", "Ensure that privileged containers are not used", SeverityHigh}, privileged},
	{Check{"5.6", "Ensure sensitive host system directories are not mounted on containers", SeverityHigh}, sensitiveMounts},
	{Check{"5.10", "Ensure that the host's network namespace is not shared", SeverityMedium}, hostNamespace(specs.NetworkNamespace)},
	{Check{"5.13", "Ensure that the container's root filesystem is mounted as read only", SeverityLow}, writableRoot},
	{Check{"5.16", "Ensure that the host's process namespace is not shared", SeverityMedium}, hostNamespace(specs.PIDNamespace)},
	{Check{"5.17", "Ensure that the host's IPC namespace is not shared", SeverityMedium}, hostNamespace(specs.IPCNamespace)},
	{Check{"5.21", "Ensure that the host's UTS namespace is not shared", SeverityLow}, hostNamespace(specs.UTSNamespace)},
	{Check{"5.22", "Ensure the default seccomp profile is not Disabled", SeverityMedium}, seccompDisabled},
	{Check{"5.26", "Ensure that the container is restricted from acquiring additional privileges", SeverityLow}, newPrivileges},
	{Check{"5.31", "Ensure that the host's user namespaces are not shared", SeverityLow}, hostNamespace(specs.UserNamespace)},
	{Check{"5.32", "Ensure that the Docker socket is not mounted inside any containers", SeverityHigh}, runtimeSocketMounts},
}

// Checks lists every check Evaluate runs, in the order Evaluate reports
// them, so that a report can show the passed ones too. The slice is the
// caller's.
func Checks() []Check {
	out := make([]Check, len(rules))
	for i, r := range rules {
		out[i] = r.Check
	}
	return out
}

// Evaluate returns the checks spec fails, in the order of Checks, with the
// zero Options. See Options.Evaluate.
func Evaluate(spec *specs.Spec) []Finding {
	return Options{}.Evaluate(spec)
}

// Evaluate returns the checks spec fails, in the order of Checks. The slice
// is empty, not nil, when every check passes, so that its JSON form is [].
// A nil spec yields a single finding, CheckSpecUnknown. A spec without a
// process or linux section is taken as the runtime would run it: uid 0, no
// capabilities, no namespaces of its own.
func (o Options) Evaluate(spec *specs.Spec) []Finding {
	if spec == nil {
		return []Finding{{
			Check:    CheckSpecUnknown,
			Title:    "Container OCI runtime spec is known",
			Severity: SeverityUnknown,
			Detail:   "the runtime did not provide the container's OCI spec: no check was evaluated",
		}}
	}
	out := []Finding{}
	for _, r := range rules {
		if d := r.eval(spec, o); d != "" {
			out = append(out, Finding{Check: r.ID, Title: r.Title, Severity: r.Severity, Detail: d})
		}
	}
	return out
}

// process returns s's process section, the zero one when absent.
func process(s *specs.Spec) specs.Process {
	if s.Process == nil {
		return specs.Process{}
	}
	return *s.Process
}

// linux returns s's linux section, the zero one when absent.
func linux(s *specs.Spec) specs.Linux {
	if s.Linux == nil {
		return specs.Linux{}
	}
	return *s.Linux
}
