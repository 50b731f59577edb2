// Package posture evaluates a container's OCI runtime spec against the
// container checks of the CIS Docker Benchmark v1.6.0 that a node can see in
// that spec: a root user, added capabilities, privileged mode, sensitive host
// directories and runtime sockets mounted, host namespaces shared, a writable
// root filesystem, seccomp disabled and no-new-privileges unset.
//
// Evaluate is pure: it reads the spec and nothing on the host, so it gives the
// same answer for a spec from containerd, from a runc bundle or from a test.
// Report, WriteTable and WriteJSON present the results.
package posture
