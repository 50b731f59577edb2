package sensor

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/test/ia32"
)

// The batch helper runs several operations, each reported on its own line
// as "RESULT <name> ok" or "RESULT <name> <errno or error>", so that one
// process (one container) can try every route. An operation is written
// "name=op:arg1,arg2".

// runBatch runs the operations of args; it runs in the child.
func runBatch(args []string) int {
	runtime.LockOSThread() // setns and the sockets stay on this thread
	for _, spec := range args {
		name, rest, _ := strings.Cut(spec, "=")
		op, argList, _ := strings.Cut(rest, ":")
		var a []string
		if argList != "" {
			a = strings.Split(argList, ",")
		}
		err := batchOp(op, a)
		fmt.Printf("RESULT %s %s\n", name, resultWord(err))
	}
	return 0
}

func resultWord(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}

func batchOp(op string, a []string) error {
	switch op {
	case "chroot":
		if err := unix.Chroot(a[0]); err != nil {
			return err
		}
		return unix.Chdir("/")
	case "chroot-escape": // dir, file: chroot into dir, then write file by a descriptor of the old root
		return chrootEscape(a[0], a[1])
	case "userns-bind": // src, dst, file: in a new user and mount namespace, bind src on dst and write dst/file
		return usernsBind(a[0], a[1], a[2])
	case "bind-write": // src, dst, file: runs in the child usernsBind starts
		if err := unix.Mount(a[0], a[1], "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		return appendTo(filepath.Join(a[1], a[2]))
	case "append": // path: opens it for write and appends a byte
		return appendTo(a[0])
	case "setns":
		fd, err := unix.Open(a[0], unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Setns(fd, unix.CLONE_NEWNET)
	case "fallocate":
		return withFD(a[0], unix.O_WRONLY, func(fd int) error { return unix.Fallocate(fd, 0, 0, 4096) })
	case "renameat2-exchange":
		return unix.Renameat2(unix.AT_FDCWD, a[0], unix.AT_FDCWD, a[1], unix.RENAME_EXCHANGE)
	case "renameat2-whiteout":
		return unix.Renameat2(unix.AT_FDCWD, a[0], unix.AT_FDCWD, a[1], unix.RENAME_WHITEOUT)
	case "io-uring-open-write":
		return ioUringOpen(a[0], unix.O_WRONLY)
	case "tmpfile":
		return openClose(a[0], unix.O_WRONLY|unix.O_TMPFILE, 0o600)
	case "digest": // prints "DIGEST <a[0]> <sha256 of the trees a[1:]>", and each entry as "TREE <a[0]> ..."
		d, err := treeDigest(a[0], a[1:])
		if err != nil {
			return err
		}
		fmt.Printf("DIGEST %s %s\n", a[0], d)
		return nil
	case "sleep":
		d, err := time.ParseDuration(a[0])
		if err != nil {
			return err
		}
		time.Sleep(d)
		return nil
	case "udp-bound-to": // addr:port, want: binds a UDP socket and checks the address it got
		return withSocket("udp", a[0], func(fd int) error {
			sa, err := unix.Getsockname(fd)
			if err != nil {
				return err
			}
			var got netip.Addr
			switch sa := sa.(type) {
			case *unix.SockaddrInet4:
				got = netip.AddrFrom4(sa.Addr)
			case *unix.SockaddrInet6:
				got = netip.AddrFrom16(sa.Addr)
			}
			if got.String() != a[1] {
				return fmt.Errorf("bound to %s", got)
			}
			return nil
		})
	case "tcp-bind", "udp-bind": // addr:port, binds and closes
		return withSocket(op[:3], a[0], func(fd int) error { return nil })
	case "tcp-listen": // addr:port, binds, listens, closes
		return withSocket("tcp", a[0], func(fd int) error { return unix.Listen(fd, 8) })
	case "tcp-listen-unbound": // family; listens without bind, prints the port, waits for a[1]
		return listenUnbound(a[0], a[1])
	case "tcp-serve": // addr:port; accepts one connection within a[1]
		return serveOne(a[0], a[1])
	case "bindtodevice": // family, interface name
		fd, err := unix.Socket(family(a[0]), unix.SOCK_STREAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.BindToDevice(fd, a[1])
	case "bindtodevice-long": // interface name, in an option buffer longer than a page
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		buf := make([]byte, 3*4096)
		copy(buf, a[0])
		_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0)
		if errno != 0 {
			return errno
		}
		return nil
	case "socket": // raw4, sctp4, packet: makes one and closes it
		spec, ok := map[string][3]int{
			"raw4":   {unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP},
			"sctp4":  {unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_SCTP},
			"packet": {unix.AF_PACKET, unix.SOCK_RAW, 0x0300}, // ETH_P_ALL, big-endian
		}[a[0]]
		if !ok {
			return fmt.Errorf("no socket kind %q", a[0])
		}
		fd, err := unix.Socket(spec[0], spec[1], spec[2])
		if err != nil {
			return err
		}
		return unix.Close(fd)
	case "ia32-bindtodevice": // interface name: a 32-bit setsockopt, in a child (it may fault)
		return inChild("ia32-bindtodevice-child", a...)
	case "ia32-bindtodevice-child":
		return ia32BindToDevice(a[0])
	case "bindtoifindex": // interface name: bound by its index
		ifi, err := net.InterfaceByName(a[0])
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BINDTOIFINDEX, ifi.Index)
	case "tcp-connect": // addr:port
		c, err := net.DialTimeout("tcp", a[0], 3*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	case "udp-query": // addr:port: a client as musl's resolver is, bound to the wildcard and port 0; waits for the echo
		return udpQuery(a[0])
	}
	return helperOp(op, a)
}

func family(name string) int {
	if name == "6" {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// withSocket makes a socket of proto bound to addrport and runs fn on it.
func withSocket(proto, addrport string, fn func(fd int) error) error {
	ap, err := netip.ParseAddrPort(addrport)
	if err != nil {
		return err
	}
	typ := unix.SOCK_STREAM
	if proto == "udp" {
		typ = unix.SOCK_DGRAM
	}
	var sa unix.Sockaddr
	fam := unix.AF_INET
	if ap.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	} else {
		fam = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := unix.Socket(fam, typ, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, sa); err != nil {
		return err
	}
	return fn(fd)
}

// listenUnbound listens on a socket nobody bound (the kernel binds it to
// the wildcard and an ephemeral port), prints "PORT n" and keeps it open
// for the duration d.
func listenUnbound(fam, d string) error {
	dur, err := time.ParseDuration(d)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(family(fam), unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Listen(fd, 8); err != nil {
		return err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return err
	}
	port := 0
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		port = sa.Port
	case *unix.SockaddrInet6:
		port = sa.Port
	}
	fmt.Printf("PORT %d\n", port)
	time.Sleep(dur)
	return nil
}

// serveOne listens on addrport and accepts one connection within d,
// printing "LISTENING" once it listens.
func serveOne(addrport, d string) error {
	dur, err := time.ParseDuration(d)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", addrport)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println("LISTENING")
	l.(*net.TCPListener).SetDeadline(time.Now().Add(dur))
	c, err := l.Accept()
	if err != nil {
		return err
	}
	return c.Close()
}

func udpQuery(addrport string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{}); err != nil {
		return err
	}
	ap, err := netip.ParseAddrPort(addrport)
	if err != nil {
		return err
	}
	to := &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	if err := unix.Sendto(fd, []byte("query"), 0, to); err != nil {
		return err
	}
	tv := unix.NsecToTimeval(int64(3 * time.Second))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	buf := make([]byte, 64)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "query" {
		return fmt.Errorf("reply %q", buf[:n])
	}
	return nil
}

// parseResults reads the RESULT lines of a batch helper's output.
func parseResults(out string) map[string]string {
	res := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "RESULT" {
			res[f[1]] = f[2]
		}
	}
	return res
}

// batchArgs formats operations for runBatch.
func batchArgs(ops ...[]string) []string {
	var out []string
	for _, o := range ops {
		s := o[0] + "=" + o[1]
		if len(o) > 2 {
			s += ":" + strings.Join(o[2:], ",")
		}
		out = append(out, s)
	}
	return out
}

// treeDigest hashes names, modes, owners, times, link targets, and the
// sizes, link counts and contents of files, of everything below the roots.
func treeDigest(name string, roots []string) (string, error) {
	sum := sha256.New()
	var h io.Writer = sum
	for _, root := range roots {
		if _, err := os.Lstat(root); os.IsNotExist(err) {
			fmt.Fprintf(h, "%s absent\n", root)
			continue
		}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			entry := fmt.Sprintf("%s %o %d %d %d.%d", p, st.Mode, st.Uid, st.Gid, st.Mtim.Sec, st.Mtim.Nsec)
			if !d.IsDir() {
				// A directory's size and link count are the file system's
				// business: overlayfs changes them when it copies one up.
				entry += fmt.Sprintf(" %d %d", st.Size, st.Nlink)
			}
			if d.Type().IsRegular() {
				entry += " flags=" + fileFlags(p)
			}
			fmt.Printf("TREE %s %s\n", name, entry)
			fmt.Fprintln(h, entry)
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				t, _ := os.Readlink(p)
				fmt.Fprintln(h, t)
			case d.Type().IsRegular():
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				h.Write(b)
			}
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(sum.Sum(nil)), nil
}

// appendTo opens path for write and appends a byte to it.
func appendTo(path string) error {
	return withFD(path, unix.O_WRONLY|unix.O_APPEND, func(fd int) error {
		_, err := unix.Write(fd, []byte("x"))
		return err
	})
}

// chrootEscape keeps a descriptor of "/", chroots into dir, writes file
// (relative) through that descriptor, and goes back to the old root.
func chrootEscape(dir, file string) error {
	old, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(old)
	if err := unix.Chroot(dir); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	defer func() { unix.Fchdir(old); unix.Chroot(".") }()
	fd, err := unix.Openat(old, file, unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, []byte("x"))
	return err
}

// inChild runs op with args in a child copy of the helper and returns its
// result; a child killed by a signal gives the signal's name.
func inChild(op string, args ...string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-test.run=^$", "w="+op+":"+strings.Join(args, ","))
	cmd.Env = append(os.Environ(), helperEnv+"=batch", helperArgcEnv+"=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return errors.New(unix.SignalName(ws.Signal()))
		}
	}
	if err != nil {
		return fmt.Errorf("child: %w: %s", err, out)
	}
	return childResult(out)
}

// childResult is the result a child batch of one op ("w") printed.
func childResult(out []byte) error {
	for _, line := range strings.Split(string(out), "\n") {
		if word, ok := strings.CutPrefix(line, "RESULT w "); ok {
			if word == "ok" {
				return nil
			}
			return errors.New(word)
		}
	}
	return fmt.Errorf("child: no result: %s", out)
}

// ia32BindToDevice binds a new socket to a device through the ia32
// setsockopt, which the cgroup setsockopt hook does not see.
func ia32BindToDevice(dev string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	m, err := ia32.NewMem()
	if err != nil {
		return err
	}
	defer m.Close()
	name, err := m.String(dev)
	if err != nil {
		return err
	}
	_, err = ia32.Syscall5(ia32.SysSetsockopt, uintptr(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, name, uintptr(len(dev)+1))
	return err
}

// usernsBind runs bind-write in a child in a new user namespace (mapping
// this process's ids to root there, no capability needed) and a new mount
// namespace, and returns the child's result.
func usernsBind(src, dst, file string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-test.run=^$", "w=bind-write:"+src+","+dst+","+file)
	cmd.Env = append(os.Environ(), helperEnv+"=batch", helperArgcEnv+"=1")
	uid, gid := os.Getuid(), os.Getgid()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("child: %w: %s", err, out)
	}
	return childResult(out)
}

// fileFlags is a regular file's attribute flags (chattr's), or why they
// could not be read.
func fileFlags(p string) string {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return resultWord(err)
	}
	defer unix.Close(fd)
	fl, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return resultWord(err)
	}
	return fmt.Sprintf("%#x", fl)
}
