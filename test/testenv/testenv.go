// Package testenv tells tests which environment they run in and makes
// privileged tests fail, rather than skip, where they are required to run.
package testenv

import (
	"fmt"
	"os"
	"strings"
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
	if err := checkName(tb.Name()); err != nil {
		tb.Fatal(err)
	}
	if os.Geteuid() == 0 {
		lockHost(tb)
		return
	}
	Unavailable(tb, "needs root (BPF programs, cgroups)")
}

// Names of privileged tests: the VMs run every TestPrivileged test of the
// packages that have a *_privileged_test.go file, on each kernel; TestHost
// tests (in *_host_test.go files) need root on the host only.
const (
	PrivilegedPrefix = "TestPrivileged"
	HostPrefix       = "TestHost"
)

// checkName refuses a privileged test whose name does not say so: the VMs
// would not run it, or the host's unprivileged runs would not expect it.
func checkName(name string) error {
	if strings.HasPrefix(name, PrivilegedPrefix) || strings.HasPrefix(name, HostPrefix) {
		return nil
	}
	return fmt.Errorf("%s needs root: name it %s... (run on the host and in the VMs) or %s... (the host only)", name, PrivilegedPrefix, HostPrefix)
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
