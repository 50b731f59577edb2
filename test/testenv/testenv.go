// Package testenv tells tests which environment they run in and makes
// privileged tests fail, rather than skip, where they are required to run.
package testenv

import (
	"os"
	"testing"
)

// Environment variables set by `make test`, `.ci/run` and the VM harness.
const (
	// RequirePrivilegedEnv, when "1", turns every privileged skip into a failure.
	RequirePrivilegedEnv = "RINGFENCE_REQUIRE_PRIVILEGED"
	// VMTestEnv is "1" inside a test VM, where the full tier is expected.
	VMTestEnv = "RINGFENCE_VMTEST"
)

// Privileged stops the test unless it runs as root. Under
// RINGFENCE_REQUIRE_PRIVILEGED=1 it fails instead of skipping. As root it
// first waits for the host lock (see HostLockPath).
func Privileged(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		lockHost(tb)
		return
	}
	Unavailable(tb, "needs root (BPF programs, cgroups)")
}

// Unavailable skips the test with reason, or fails it when privileged tests
// are required to run.
func Unavailable(tb testing.TB, reason string) {
	tb.Helper()
	if os.Getenv(RequirePrivilegedEnv) == "1" {
		tb.Fatalf("cannot run, and %s=1 requires it: %s", RequirePrivilegedEnv, reason)
	}
	tb.Skip(reason)
}

// InVM reports whether the test runs inside a ringfence test VM.
func InVM() bool { return os.Getenv(VMTestEnv) == "1" }
