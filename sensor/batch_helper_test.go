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
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
