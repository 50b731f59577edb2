package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// HostLockPath is the file a privileged test binary locks for as long
	// as it runs, so that the privileged tests of two packages (which `go
	// test ./...` runs side by side) never share the node: a sensor
	// watches every container of the node, and a test that counts what
	// its daemon saw must not see another package's containers.
	HostLockPath = "/run/ringfence-tests.lock"
	// hostLockEnv is set once the lock is held, so that a child test
	// binary (a helper started by a test) does not wait for its parent.
	hostLockEnv = "RINGFENCE_TEST_HOST_LOCK"
)

// hostLock is the process's hold on HostLockPath: taken by the first
// privileged test, released when the process exits.
var hostLock struct {
	once sync.Once
	file *os.File
	err  error
}

// lockHost takes the host lock once per process, waiting for any other
// test binary that holds it.
func lockHost(tb testing.TB) {
	tb.Helper()
	hostLock.once.Do(func() {
		if os.Getenv(hostLockEnv) != "" {
			return
		}
		if err := os.MkdirAll(filepath.Dir(HostLockPath), 0o755); err != nil {
			hostLock.err = fmt.Errorf("host lock: %w", err)
			return
		}
		f, err := os.OpenFile(HostLockPath, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			hostLock.err = fmt.Errorf("host lock: %w", err)
			return
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			start := time.Now()
			fmt.Fprintf(os.Stderr, "waiting for %s: another package's privileged tests are running\n", HostLockPath)
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
				f.Close()
				hostLock.err = fmt.Errorf("host lock %s: %w", HostLockPath, err)
				return
			}
			fmt.Fprintf(os.Stderr, "%s taken after %s\n", HostLockPath, time.Since(start).Round(time.Millisecond))
		}
		hostLock.file = f
		hostLock.err = os.Setenv(hostLockEnv, fmt.Sprint(os.Getpid()))
	})
	if hostLock.err != nil {
		tb.Fatal(hostLock.err)
	}
}

// hostLockFDs is the number of descriptors the host lock keeps open.
func hostLockFDs() int {
	if hostLock.file != nil {
		return 1
	}
	return 0
}
