package kernel

// Capability states whether a rule can be enforced on a tier, and how.
type Capability struct {
	Rule        string
	Enforceable bool
	Detail      string
}

// Capabilities lists, for each rule of the policy model, whether a tier
// enforces it in the kernel. reason is the probe's reason, repeated where a
// rule is audit-only because of it.
func Capabilities(tier Tier, reason string) []Capability {
	if tier == TierFull {
		return []Capability{
			{"readOnlyRootFilesystem", true, "BPF LSM path and inode hooks"},
			{"bindInterfaces", true, "cgroup sock_addr bind hooks"},
			{"allowedRegistries", true, "BPF LSM bprm_check_security"},
			{"denyPrivileged", true, "BPF LSM bprm_check_security"},
		}
	}
	const notHere = "audit only, not enforceable on this kernel: "
	return []Capability{
		{"readOnlyRootFilesystem", false, notHere + reason},
		{"bindInterfaces", true, "cgroup sock_addr bind hooks"},
		{"allowedRegistries", false, notHere + reason},
		{"denyPrivileged", false, notHere + reason},
	}
}
