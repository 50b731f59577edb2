package kernel

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/hostfs"
)

// Well-known mount points of the pseudo-filesystems the sensor uses.
const (
	SecurityFSPath = "/sys/kernel/security"
	BPFFSPath      = "/sys/fs/bpf"
	TraceFSPath    = "/sys/kernel/tracing"
)

// EnsureMounts mounts securityfs, bpffs and tracefs where they are missing.
// It is idempotent and returns the first mount that failed.
func EnsureMounts() error {
	mounts, err := hostfs.Read()
	if err != nil {
		return fmt.Errorf("read mount table: %w", err)
	}
	for _, want := range []hostfs.Mount{
		{Point: SecurityFSPath, FSType: "securityfs"},
		{Point: BPFFSPath, FSType: "bpf"},
		{Point: TraceFSPath, FSType: "tracefs"},
	} {
		if mounted(mounts, want) {
			continue
		}
		if err := os.MkdirAll(want.Point, 0o755); err != nil {
			return fmt.Errorf("mount %s: %w", want.FSType, err)
		}
		if err := unix.Mount(want.FSType, want.Point, want.FSType, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s at %s: %w", want.FSType, want.Point, err)
		}
	}
	return nil
}

func mounted(mounts []hostfs.Mount, want hostfs.Mount) bool {
	for _, m := range mounts {
		if m.Point == want.Point && m.FSType == want.FSType {
			return true
		}
	}
	return false
}
