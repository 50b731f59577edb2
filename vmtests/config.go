package vmtests

import (
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// DefaultCacheDir is where kernels, .deb files, initramfs images and console
// logs are kept when Config.CacheDir is empty.
const DefaultCacheDir = "/var/cache/ringfence/vmtests"

// DefaultTimeout bounds one boot of one kernel, tests included.
const DefaultTimeout = 10 * time.Minute

// DefaultBootTimeout bounds the time from starting qemu to the RINGFENCE-LSM
// line, i.e. kernel boot plus the first steps of /init. An emulated boot
// takes a few seconds; a VM still silent after this long is treated as hung
// in early boot and handled like a VM that died before reporting.
const DefaultBootTimeout = 3 * time.Minute

// DefaultBusybox is the statically linked busybox (Debian package
// busybox-static) copied into every initramfs.
const DefaultBusybox = "/bin/busybox"

// DefaultQEMU is the qemu binary used to boot the kernels.
const DefaultQEMU = "qemu-system-x86_64"

// Config describes one harness run.
type Config struct {
	// Kernels lists kernel series such as "6.1" and "6.12"; they are tested
	// one after another, in this order.
	Kernels []string
	// CacheDir holds downloaded packages, unpacked kernels, initramfs images
	// and console logs. Empty means DefaultCacheDir.
	CacheDir string
	// Tests are host paths of statically linked Go test binaries.
	Tests []string
	// Run, when not empty, is passed to every test binary as -test.run.
	Run string
	// Require names top-level tests that must pass on every kernel.
	Require []string
	// Timeout bounds one boot; zero means DefaultTimeout.
	Timeout time.Duration
	// BootTimeout bounds the time until /init reports the LSM list; zero
	// means DefaultBootTimeout.
	BootTimeout time.Duration
	// Extras are additional host files copied into the initramfs.
	Extras []Extra
	// Modules names kernel modules (such as "overlay") that /init loads
	// before the tests, with what they depend on. They are taken from each
	// kernel's own package; one built into a kernel is not loaded there.
	Modules []string
	// Busybox is the static busybox binary; empty means DefaultBusybox.
	Busybox string
	// QEMU is the qemu binary name or path; empty means DefaultQEMU.
	QEMU string
	// Out receives progress messages and the prefixed VM console. It must
	// not be nil.
	Out io.Writer
}

// Extra is a host file (Src) to be placed in the initramfs at Dst.
type Extra struct {
	// Src is the file's path on the host.
	Src string
	// Dst is the absolute path inside the VM.
	Dst string
}

// ParseExtra parses a -extra flag value of the form SRC:DST, where DST is an
// absolute path inside the VM.
func ParseExtra(s string) (Extra, error) {
	i := strings.LastIndex(s, ":")
	if i <= 0 || i == len(s)-1 {
		return Extra{}, fmt.Errorf("extra %q: want SRC:DST", s)
	}
	e := Extra{Src: s[:i], Dst: s[i+1:]}
	if !path.IsAbs(e.Dst) {
		return Extra{}, fmt.Errorf("extra %q: destination %q is not an absolute path", s, e.Dst)
	}
	e.Dst = path.Clean(e.Dst)
	return e, nil
}

// withDefaults returns a copy of c with empty fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.CacheDir == "" {
		c.CacheDir = DefaultCacheDir
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.BootTimeout <= 0 {
		c.BootTimeout = DefaultBootTimeout
	}
	if c.BootTimeout > c.Timeout {
		c.BootTimeout = c.Timeout
	}
	if c.Busybox == "" {
		c.Busybox = DefaultBusybox
	}
	if c.QEMU == "" {
		c.QEMU = DefaultQEMU
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	return c
}
