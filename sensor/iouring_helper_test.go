package sensor

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioUringOpen opens path with flags through io_uring (IORING_OP_OPENAT)
// instead of a syscall of its own: a write route that syscall tracing does
// not see and the LSM hooks do.
func ioUringOpen(path string, flags uint32) error {
	var p struct {
		sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
		resv                                                                   [3]uint32
		sqOff                                                                  struct {
			head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
			userAddr                                                        uint64
		}
		cqOff struct {
			head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
			userAddr                                                        uint64
		}
	}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return fmt.Errorf("io_uring_setup: %w", errno)
	}
	defer unix.Close(int(fd))
	const featSingleMmap = 1
	if p.features&featSingleMmap == 0 {
		return fmt.Errorf("io_uring without IORING_FEAT_SINGLE_MMAP")
	}
	ringSize := max(int(p.sqOff.array+p.sqEntries*4), int(p.cqOff.cqes+p.cqEntries*16))
	ring, err := unix.Mmap(int(fd), 0, ringSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap rings: %w", err)
	}
	defer unix.Munmap(ring)
	sqes, err := unix.Mmap(int(fd), 0x10000000, int(p.sqEntries)*64, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap sqes: %w", err)
	}
	defer unix.Munmap(sqes)

	name, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	const opOpenat = 18
	sqe := sqes[:64]
	clear(sqe)
	sqe[0] = opOpenat
	*(*int32)(unsafe.Pointer(&sqe[4])) = unix.AT_FDCWD
	*(*uint64)(unsafe.Pointer(&sqe[16])) = uint64(uintptr(unsafe.Pointer(name)))
	*(*uint32)(unsafe.Pointer(&sqe[24])) = 0o644
	*(*uint32)(unsafe.Pointer(&sqe[28])) = flags | unix.O_CLOEXEC
	mask := *(*uint32)(unsafe.Pointer(&ring[p.sqOff.ringMask]))
	tail := (*uint32)(unsafe.Pointer(&ring[p.sqOff.tail]))
	t := atomic.LoadUint32(tail)
	*(*uint32)(unsafe.Pointer(&ring[p.sqOff.array+4*(t&mask)])) = 0
	atomic.StoreUint32(tail, t+1)

	const enterGetEvents = 1
	if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, fd, 1, 1, enterGetEvents, 0, 0); errno != 0 {
		return fmt.Errorf("io_uring_enter: %w", errno)
	}
	runtime.KeepAlive(name)
	cqMask := *(*uint32)(unsafe.Pointer(&ring[p.cqOff.ringMask]))
	head := (*uint32)(unsafe.Pointer(&ring[p.cqOff.head]))
	if atomic.LoadUint32((*uint32)(unsafe.Pointer(&ring[p.cqOff.tail]))) == atomic.LoadUint32(head) {
		return fmt.Errorf("io_uring: no completion")
	}
	h := atomic.LoadUint32(head)
	res := *(*int32)(unsafe.Pointer(&ring[p.cqOff.cqes+16*(h&cqMask)+8]))
	atomic.StoreUint32(head, h+1)
	if res < 0 {
		return syscall.Errno(-res)
	}
	return unix.Close(int(res))
}
