package kernel

// Capability states whether a rule can be enforced on a tier, and how.
type Capability struct {
	Rule        string
	Enforceable bool
	Detail      string
}

// Capabilities lists, for each rule of the policy model, whether the
// probed kernel enforces it and by which hooks, and what it cannot
// refuse. The probe's reason is repeated where a rule is audit-only
// because of it.
func Capabilities(p Probe) []Capability {
	bind := "enforced: cgroup bind4/bind6 and setsockopt hooks refuse the call (a UDP bind to port 0 is judged by its address); cgroup ingress drops connection requests to a listener outside the rule (IPv6 extension headers walked); raw and SCTP sockets are refused (cgroup sock_create)"
	if p.Tier == TierFull {
		return []Capability{
			{"readOnlyRootFilesystem", true, "enforced: BPF LSM path, file and inode hooks refuse every write to an object of the container's root filesystem, judged by the object (its filesystem and its path from the container's root), whoever writes"},
			{"bindInterfaces", true, bind + "; BPF LSM socket_listen refuses a listen outside it, socket_create refuses packet sockets, socket_setsockopt refuses a 32-bit SO_BINDTODEVICE"},
			{"allowedRegistries", true, "enforced: BPF LSM bprm_check_security refuses every exec"},
			{"denyPrivileged", true, "enforced: BPF LSM bprm_check_security refuses every exec"},
		}
	}
	const exec = "enforced: an exec is killed before its first instruction (sched_process_exec + SIGKILL); the exec call itself cannot be refused without BPF LSM"
	bind += "; a listen on an implicitly bound socket is not refused at the call, its connection requests are dropped; packet sockets are not enforceable on this kernel (no hook sees their creation)"
	if p.IA32.Allowed {
		bind += "; a 32-bit setsockopt(SO_BINDTODEVICE) is not enforceable on this kernel (the cgroup setsockopt hook runs for 64-bit calls only, and this machine runs 32-bit ones)"
	}
	return []Capability{
		{"readOnlyRootFilesystem", false, "audit only, not enforceable on this kernel: " + p.Reason},
		{"bindInterfaces", true, bind},
		{"allowedRegistries", true, exec},
		{"denyPrivileged", true, exec},
	}
}
