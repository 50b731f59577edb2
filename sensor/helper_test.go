package sensor

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/test/ia32"
)

// The helper is this test binary run again as a child in a watched cgroup,
// doing one operation and then waiting for its stdin to close, so that
// /proc/PID stays readable until the test has seen the event.
const (
	helperEnv     = "RINGFENCE_TEST_HELPER"
	helperArgcEnv = "RINGFENCE_TEST_HELPER_ARGC"
)

// The file attribute ioctls' values (uapi linux/fs.h) that x/sys/unix
// does not name.
const (
	fsNodumpFl      = 0x40       // FS_NODUMP_FL
	fsXflagNodump   = 0x80       // FS_XFLAG_NODUMP
	fsIocFsgetxattr = 0x801c581f // FS_IOC_FSGETXATTR: _IOR('X', 31, struct fsxattr)
	fsIocFssetxattr = 0x401c5820 // FS_IOC_FSSETXATTR: _IOW('X', 32, struct fsxattr)
	fsIoc32Setflags = 0x40046602 // FS_IOC32_SETFLAGS: _IOW('f', 2, int)
	// BTRFS_IOC_SUBVOL_CREATE: _IOW(0x94, 14, struct btrfs_ioctl_vol_args),
	// a new directory entry made by an ioctl on its directory.
	btrfsIocSubvolCreate = 0x5000940e
	// file_getattr and file_setattr (6.17+), the same number on x86-64 and ia32.
	sysFileGetattr = 468
	sysFileSetattr = 469
)

func helperArgc() int {
	n, _ := strconv.Atoi(os.Getenv(helperArgcEnv))
	return n
}

// runHelper performs op with args and reports on stdout. It runs in the child.
func runHelper(op string, args []string) int {
	if err := helperOp(op, args); err != nil {
		fmt.Printf("error %v\n", err)
		return 1
	}
	fmt.Println("done")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

func helperOp(op string, a []string) error {
	switch op {
	case "open-write":
		return openClose(a[0], unix.O_WRONLY, 0)
	case "create":
		return openClose(a[0], unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
	case "open-trunc":
		return openClose(a[0], unix.O_WRONLY|unix.O_TRUNC, 0)
	case "truncate":
		return unix.Truncate(a[0], 1)
	case "ftruncate":
		return withFD(a[0], unix.O_WRONLY, func(fd int) error { return unix.Ftruncate(fd, 2) })
	case "unlink":
		return unix.Unlink(a[0])
	case "rmdir":
		return unix.Rmdir(a[0])
	case "unlinkat-removedir":
		return unix.Unlinkat(unix.AT_FDCWD, a[0], unix.AT_REMOVEDIR)
	case "rename":
		return unix.Rename(a[0], a[1])
	case "renameat2-noreplace":
		return unix.Renameat2(unix.AT_FDCWD, a[0], unix.AT_FDCWD, a[1], unix.RENAME_NOREPLACE)
	case "link":
		return unix.Link(a[0], a[1])
	case "symlink":
		return unix.Symlink(a[0], a[1])
	case "mkdir":
		return unix.Mkdir(a[0], 0o755)
	case "mknod":
		return unix.Mknod(a[0], unix.S_IFIFO|0o600, 0)
	case "chmod":
		return unix.Chmod(a[0], 0o600)
	case "fchmod":
		return withFD(a[0], unix.O_RDONLY, func(fd int) error { return unix.Fchmod(fd, 0o640) })
	case "chown":
		return unix.Chown(a[0], 1234, 5678)
	case "fchown":
		return withFD(a[0], unix.O_RDONLY, func(fd int) error { return unix.Fchown(fd, 4321, 8765) })
	case "setxattr":
		return unix.Setxattr(a[0], "trusted.ringfence", []byte("1"), 0)
	case "removexattr":
		return unix.Removexattr(a[0], "trusted.ringfence")
	case "lchown": // a symlink itself, not what it names
		return unix.Lchown(a[0], 1234, 5678)
	case "lsetxattr":
		return unix.Lsetxattr(a[0], "trusted.ringfence", []byte("1"), 0)
	case "lremovexattr":
		return unix.Lremovexattr(a[0], "trusted.ringfence")
	case "setacl": // a POSIX access ACL, which 6.2+ kernels route to inode_set_acl
		return unix.Setxattr(a[0], aclXattr, testACL(), 0)
	case "removeacl":
		return unix.Removexattr(a[0], aclXattr)
	case "ia32-create": // open(O_CREAT) by the ia32 entry (number 5: fstat on x86-64)
		return ia32Call(ia32.SysOpen, a[0], unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	case "ia32-setflags": // chattr +d by an ia32 ioctl (FS_IOC32_SETFLAGS), on a descriptor open for reading
		return withFD(a[0], unix.O_RDONLY, func(fd int) error {
			flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
			if err != nil {
				return err
			}
			m, err := ia32.NewMem()
			if err != nil {
				return err
			}
			defer m.Close()
			p, err := m.Uint32(flags | fsNodumpFl)
			if err != nil {
				return err
			}
			if _, err := ia32.Syscall(ia32.SysIoctl, uintptr(fd), fsIoc32Setflags, p); err != nil {
				return fmt.Errorf("ia32 ioctl: %w", err)
			}
			return nil
		})
	case "ia32-readlink": // ia32 readlink is 85: creat on x86-64
		return ia32Call(ia32.SysReadlink, a[0], 0, 64)
	case "open-by-handle": // the file, and a descriptor of its directory as mount_fd
		h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, a[0], 0)
		if err != nil {
			return err
		}
		mfd, err := unix.Open(filepath.Dir(a[0]), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(mfd)
		fd, err := unix.OpenByHandleAt(mfd, h, unix.O_WRONLY|unix.O_CLOEXEC)
		if err != nil {
			return err
		}
		return unix.Close(fd)
	case "utimes":
		return unix.UtimesNano(a[0], []unix.Timespec{{Sec: 1}, {Sec: 2}})
	case "setflags": // chattr +d, by a descriptor open for reading
		return withFD(a[0], unix.O_RDONLY, func(fd int) error {
			flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
			if err != nil {
				return err
			}
			return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|fsNodumpFl))
		})
	case "subvol-create": // a btrfs subvolume in a directory open for reading (ENOTTY elsewhere)
		return withFD(a[0], unix.O_RDONLY|unix.O_DIRECTORY, func(fd int) error {
			var args [4096]byte // struct btrfs_ioctl_vol_args: fd (s64), then the name
			copy(args[8:], "rf-subvol")
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), btrfsIocSubvolCreate, uintptr(unsafe.Pointer(&args[0]))); e != 0 {
				return e
			}
			return nil
		})
	case "harmless-ioctls": // what asks a regular file and changes nothing: never judged
		return withFD(a[0], unix.O_RDONLY, func(fd int) error {
			if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != unix.ENOTTY { // isatty
				return fmt.Errorf("TCGETS: %v, want ENOTTY", err)
			}
			if _, err := unix.IoctlGetInt(fd, unix.TIOCINQ); err != nil { // FIONREAD
				return fmt.Errorf("FIONREAD: %w", err)
			}
			if _, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS); err != nil {
				return fmt.Errorf("FS_IOC_GETFLAGS: %w", err)
			}
			var fa [28]byte
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsIocFsgetxattr, uintptr(unsafe.Pointer(&fa[0]))); e != 0 {
				return fmt.Errorf("FS_IOC_FSGETXATTR: %w", e)
			}
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), 0x5451 /* FIOCLEX */, 0); e != 0 {
				return fmt.Errorf("FIOCLEX: %w", e)
			}
			return nil
		})
	case "file-setattr": // FS_XFLAG_NODUMP by file_setattr (6.17+; ENOSYS before), no ioctl
		name, err := unix.BytePtrFromString(a[0])
		if err != nil {
			return err
		}
		dfd := unix.AT_FDCWD
		var fa [24]byte // struct file_attr: fa_xflags (u64), then four u32
		for nr, what := range []uintptr{sysFileGetattr, sysFileSetattr} {
			if nr == 1 {
				binary.NativeEndian.PutUint64(fa[:], binary.NativeEndian.Uint64(fa[:])|fsXflagNodump)
			}
			if _, _, e := unix.Syscall6(what, uintptr(dfd), uintptr(unsafe.Pointer(name)), uintptr(unsafe.Pointer(&fa[0])), uintptr(len(fa)), 0, 0); e != 0 {
				return e
			}
		}
		return nil
	case "pseudo-ioctls": // ioctls on what no root holds, and on an O_PATH descriptor of a[0]: never judged
		subvol := func(fd int) error {
			var args [4096]byte
			_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), btrfsIocSubvolCreate, uintptr(unsafe.Pointer(&args[0])))
			if e != 0 {
				return e
			}
			return nil
		}
		efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC) // an anonymous inode: a regular file inside 6.15+
		if err != nil {
			return err
		}
		defer unix.Close(efd)
		if err := subvol(efd); err != unix.ENOTTY {
			return fmt.Errorf("eventfd: %v, want ENOTTY", err)
		}
		if err := withFD("/proc/self/ns/net", unix.O_RDONLY, func(fd int) error { // nsfs: a regular file
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), 0xb703 /* NS_GET_NSTYPE */, 0); e != 0 {
				return fmt.Errorf("NS_GET_NSTYPE: %w", e)
			}
			if err := subvol(fd); err != unix.ENOTTY {
				return fmt.Errorf("nsfs: %v, want ENOTTY", err)
			}
			return nil
		}); err != nil {
			return err
		}
		return withFD(a[0], unix.O_PATH, func(fd int) error {
			if err := subvol(fd); err != unix.EBADF {
				return fmt.Errorf("O_PATH: %v, want EBADF", err)
			}
			return nil
		})
	case "fssetxattr": // the same through FS_IOC_FSSETXATTR
		return withFD(a[0], unix.O_RDONLY, func(fd int) error {
			var fa [28]byte // struct fsxattr: xflags first
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsIocFsgetxattr, uintptr(unsafe.Pointer(&fa[0]))); e != 0 {
				return e
			}
			binary.NativeEndian.PutUint32(fa[:], binary.NativeEndian.Uint32(fa[:])|fsXflagNodump)
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsIocFssetxattr, uintptr(unsafe.Pointer(&fa[0]))); e != 0 {
				return e
			}
			return nil
		})
	case "relative-create": // a path relative to the cwd
		if err := os.Chdir(a[0]); err != nil {
			return err
		}
		return openClose(a[1], unix.O_WRONLY|unix.O_CREAT, 0o644)
	case "exec":
		self, err := os.Executable()
		if err != nil {
			return err
		}
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, helperEnv+"=") && !strings.HasPrefix(kv, helperArgcEnv+"=") {
				env = append(env, kv)
			}
		}
		env = append(env, helperEnv+"=noop", helperArgcEnv+"=0")
		return syscall.Exec(self, append([]string{"rf-exec-marker"}, a...), env)
	case "noop":
		return nil
	case "exit": // status: ends the process at once with that exit status
		n, err := strconv.Atoi(a[0])
		if err != nil {
			return err
		}
		os.Exit(n)
	case "open-write-loop":
		n, err := strconv.Atoi(a[1])
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := openClose(a[0], unix.O_WRONLY, 0); err != nil {
				return err
			}
		}
		return nil
	case "bind4", "bind6":
		network, host := "tcp4", "0.0.0.0"
		if op == "bind6" {
			network, host = "tcp6", "::"
		}
		l, err := net.Listen(network, net.JoinHostPort(host, a[0]))
		if err != nil {
			return err
		}
		return l.Close()
	case "bind-udp4":
		c, err := net.ListenPacket("udp4", "127.0.0.1:"+a[0])
		if err != nil {
			return err
		}
		return c.Close()
	}
	return fmt.Errorf("unknown helper op %q", op)
}

// ia32Call makes ia32 syscall nr on path (copied below 4 GiB) and two
// more arguments; for readlink the second is replaced by a buffer there.
func ia32Call(nr uintptr, path string, a2, a3 uintptr) error {
	m, err := ia32.NewMem()
	if err != nil {
		return err
	}
	defer m.Close()
	p, err := m.String(path)
	if err != nil {
		return err
	}
	if nr == ia32.SysReadlink {
		if a2, err = m.Alloc(int(a3)); err != nil {
			return err
		}
	}
	r, err := ia32.Syscall(nr, p, a2, a3)
	if err != nil {
		return fmt.Errorf("ia32 syscall %d: %w", nr, err)
	}
	if nr == ia32.SysOpen {
		return unix.Close(int(r))
	}
	return nil
}

const aclXattr = "system.posix_acl_access"

// testACL is a valid POSIX ACL in the kernel's xattr form (version 2, then
// tag, permissions and id of each entry, in tag order): owner rw-, user
// 1234 rw-, group r--, mask rw-, other r--.
func testACL() []byte {
	const undefinedID = 0xffffffff
	entries := []struct {
		tag, perm uint16
		id        uint32
	}{
		{0x01, 6, undefinedID}, // ACL_USER_OBJ
		{0x02, 6, 1234},        // ACL_USER
		{0x04, 4, undefinedID}, // ACL_GROUP_OBJ
		{0x10, 6, undefinedID}, // ACL_MASK
		{0x20, 4, undefinedID}, // ACL_OTHER
	}
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

func openClose(path string, flags int, mode uint32) error {
	return withFD(path, flags, func(int) error { return nil })
}

func withFD(path string, flags int, fn func(int) error) error {
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return fn(fd)
}

// helperProc is a running helper.
type helperProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	Pid   uint32
}

// startHelper runs op in a child process placed in the cgroup open at cgroupFD
// from its first instruction, and waits until it has done op.
func startHelper(tb testing.TB, cgroupFD int, op string, args ...string) *helperProc {
	tb.Helper()
	cmd := helperCmd(cgroupFD, op, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start helper %s: %v", op, err)
	}
	h := &helperProc{cmd: cmd, stdin: stdin, Pid: uint32(cmd.Process.Pid)}
	tb.Cleanup(func() { h.stop() })
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "done" {
		h.stop()
		tb.Fatalf("helper %s %v: %q", op, args, line)
	}
	return h
}

// runHelperToEnd runs op like startHelper and waits for the child to end,
// returning how it ended.
func runHelperToEnd(cgroupFD int, op string, args ...string) error {
	cmd := helperCmd(cgroupFD, op, args...)
	cmd.Stdin = strings.NewReader("")
	return cmd.Run()
}

func helperCmd(cgroupFD int, op string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+op, helperArgcEnv+"="+strconv.Itoa(len(args)))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgroupFD}
	cmd.Stderr = os.Stderr
	return cmd
}

func (h *helperProc) stop() {
	h.stdin.Close()
	h.cmd.Wait()
}
