package enforce

// APIVersion and Kind identify a RuntimePolicy document.
const (
	APIVersion = "ringfence.dev/v1alpha1"
	Kind       = "RuntimePolicy"
)

// Modes of a policy.
const (
	ModeAudit   = "audit"
	ModeEnforce = "enforce"
)

// RuntimePolicy says which containers it selects and what they may do.
type RuntimePolicy struct {
	APIVersion string
	Kind       string
	Name       string
	Spec       Spec
	// Source is where the policy was read: file and line of its document.
	Source Source
}

// Source locates a document.
type Source struct {
	File string
	Line int
}

// Spec is the body of a policy.
type Spec struct {
	// Mode is audit (allow, record a would-deny) or enforce (deny with EPERM).
	Mode     string
	Selector Selector
	// ReadOnlyRootFilesystem, when set, forbids every change of the root
	// filesystem but AllowWrites.
	ReadOnlyRootFilesystem *ReadOnly
	// BindInterfaces, when set, lets the container accept traffic only on
	// these interfaces' addresses and these ports.
	BindInterfaces *BindRule
	// AllowedRegistries, when not empty, lets only images from these
	// registries execute anything.
	AllowedRegistries []string
	// DenyPrivileged forbids privileged containers to execute anything.
	DenyPrivileged bool
}

// Selector picks containers: all given fields must match; empty selects all.
type Selector struct {
	Images     []string // globs over normalised image references
	Names      []string // globs over container names
	Labels     map[string]string
	Namespaces []string // Kubernetes namespaces
}

// ReadOnly is the read-only root filesystem rule.
type ReadOnly struct {
	AllowWrites []string // globs of paths that stay writable; ** crosses directories
}

// BindRule is the interface-binding rule.
type BindRule struct {
	Interfaces []string // interface names in the container's network namespace
	Ports      []PortRange
}

// PortRange is an inclusive range of ports.
type PortRange struct {
	From, To uint16
}
