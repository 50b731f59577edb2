package kernel

// Capability states whether a rule can be enforced on a tier, and how.
type Capability struct {
	Rule        string
	Enforceable bool
	Detail      string
}

// Capabilities lists, for each rule of the policy model, whether a tier's
// kernel enforces it and by which hooks. reason is the probe's reason,
// repeated where a rule is audit-only because of it.
func Capabilities(tier Tier, reason string) []Capability {
	const bind = "enforced: cgroup bind4/bind6 and setsockopt hooks refuse the call; cgroup ingress drops connection requests to a listener outside the rule"
	if tier == TierFull {
		return []Capability{
			{"readOnlyRootFilesystem", true, "enforced: BPF LSM path, file and inode hooks refuse every write to the container's root filesystem"},
			{"bindInterfaces", true, bind + "; BPF LSM socket_listen refuses a listen outside it"},
			{"allowedRegistries", true, "enforced: BPF LSM bprm_check_security refuses every exec"},
			{"denyPrivileged", true, "enforced: BPF LSM bprm_check_security refuses every exec"},
		}
	}
	const exec = "enforced: an exec is killed before its first instruction (sched_process_exec + SIGKILL); the exec call itself cannot be refused without BPF LSM"
	return []Capability{
		{"readOnlyRootFilesystem", false, "audit only, not enforceable on this kernel: " + reason},
		{"bindInterfaces", true, bind + "; a listen on an implicitly bound socket is not refused at the call, its connection requests are dropped"},
		{"allowedRegistries", true, exec},
		{"denyPrivileged", true, exec},
	}
}
