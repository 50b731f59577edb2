//go:build linux && amd64

// Package ia32 makes syscalls through the ia32 entry (int 0x80) from a
// 64-bit process, as a 32-bit program would: the kernel then takes the
// number from the ia32 table and the arguments from ebx, ecx, edx, esi and
// edi, 32 bits wide. Tests use it to check that the sensor tells the two
// tables apart.
package ia32

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// Syscall numbers of the ia32 table used by the tests.
const (
	SysOpen       = 5
	SysIoctl      = 54
	SysReadlink   = 85
	SysSetsockopt = 366
)

func int80(nr, a1, a2, a3, a4, a5 uintptr) uintptr

// Syscall makes ia32 syscall nr with up to three arguments (pointers must
// be below 4 GiB: see Mem) and returns its result or its errno.
func Syscall(nr, a1, a2, a3 uintptr) (int32, error) { return Syscall5(nr, a1, a2, a3, 0, 0) }

// Syscall5 is Syscall with up to five arguments.
func Syscall5(nr, a1, a2, a3, a4, a5 uintptr) (int32, error) {
	r := int32(uint32(int80(nr, a1, a2, a3, a4, a5)))
	if r < 0 && r > -4096 {
		return r, unix.Errno(-r)
	}
	return r, nil
}

// Mem is memory below 4 GiB, where ia32 syscalls can read and write.
type Mem struct {
	b   []byte
	off int
}

// NewMem maps a page of it.
func NewMem() (*Mem, error) {
	b, err := unix.Mmap(-1, 0, unix.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_32BIT)
	if err != nil {
		return nil, fmt.Errorf("mmap below 4 GiB: %w", err)
	}
	return &Mem{b: b}, nil
}

// Close unmaps it.
func (m *Mem) Close() error { return unix.Munmap(m.b) }

// Alloc returns the address of n zeroed bytes of it.
func (m *Mem) Alloc(n int) (uintptr, error) {
	if m.off+n > len(m.b) {
		return 0, fmt.Errorf("ia32 memory: %d bytes do not fit", n)
	}
	p := uintptr(addr(m.b)) + uintptr(m.off)
	m.off += n
	return p, nil
}

// String copies s and a NUL into it and returns its address.
func (m *Mem) String(s string) (uintptr, error) {
	start := m.off
	p, err := m.Alloc(len(s) + 1)
	if err != nil {
		return 0, err
	}
	copy(m.b[start:], s)
	return p, nil
}

// Uint32 stores v (native byte order) in it and returns its address.
func (m *Mem) Uint32(v uint32) (uintptr, error) {
	start := m.off
	p, err := m.Alloc(4)
	if err != nil {
		return 0, err
	}
	binary.NativeEndian.PutUint32(m.b[start:], v)
	return p, nil
}
