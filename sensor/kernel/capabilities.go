package kernel

// Capability states whether a rule can be enforced on a tier, and how.
type Capability struct {
	Rule        string
	Enforceable bool
	Detail      string
}

// Capabilities lists, for each rule of the policy model, whether a tier's
// kernel can enforce it. reason is the probe's reason, repeated where a rule
// is audit-only because of it. Policies themselves are not enforced yet, and
// the details say so rather than claim an enforcement that is not there.
func Capabilities(tier Tier, reason string) []Capability {
	const notYet = "; policy enforcement is not built yet"
	if tier == TierFull {
		return []Capability{
			{"readOnlyRootFilesystem", true, "kernel can: BPF LSM path and inode hooks" + notYet},
			{"bindInterfaces", true, "kernel can: cgroup sock_addr bind hooks" + notYet},
			{"allowedRegistries", true, "kernel can: BPF LSM bprm_check_security" + notYet},
			{"denyPrivileged", true, "kernel can: BPF LSM bprm_check_security" + notYet},
		}
	}
	const notHere = "audit only, not enforceable on this kernel: "
	return []Capability{
		{"readOnlyRootFilesystem", false, notHere + reason},
		{"bindInterfaces", true, "kernel can: cgroup sock_addr bind hooks" + notYet},
		{"allowedRegistries", false, notHere + reason},
		{"denyPrivileged", false, notHere + reason},
	}
}
