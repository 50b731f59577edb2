//go:build linux && amd64

package ia32

import "unsafe"

// addr is the address of b's first byte: the mapping is not Go memory, so
// it never moves.
func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }
