package vmtests

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// TestsDir is the directory inside the VM that holds the test binaries.
const TestsDir = "/tests"

// Initramfs is a built initramfs image.
type Initramfs struct {
	// Path is the gzip-compressed newc archive on the host.
	Path string
	// Tests are the basenames of the test binaries, in the order /init
	// runs them.
	Tests []string
}

// imageEntry is one file system object of the initramfs.
type imageEntry struct {
	mode   uint32 // file type and permission bits
	src    string // host file with the content of a regular file
	data   []byte // content of a regular file without src
	target string // symlink target
	major  uint32 // device numbers of a device node
	minor  uint32
}

// image is the set of paths of an initramfs, keyed by absolute path.
type image map[string]imageEntry

// add records e at the absolute path p, creating missing parent
// directories. Adding a different object at a taken path is an error.
func (im image) add(p string, e imageEntry) error {
	p = path.Clean(p)
	if !path.IsAbs(p) || p == "/" {
		return fmt.Errorf("initramfs: bad path %q", p)
	}
	if parent := path.Dir(p); parent != "/" {
		if pe, ok := im[parent]; ok && pe.mode&0o170000 != modeDir {
			return fmt.Errorf("initramfs: %s: parent %s is not a directory", p, parent)
		} else if !ok {
			if err := im.add(parent, imageEntry{mode: modeDir | 0o755}); err != nil {
				return err
			}
		}
	}
	if old, ok := im[p]; ok {
		if old.mode == e.mode && old.src == e.src && old.target == e.target && bytes.Equal(old.data, e.data) {
			return nil
		}
		if old.mode&0o170000 == modeDir && e.mode&0o170000 == modeDir {
			return nil
		}
		return fmt.Errorf("initramfs: %s is added twice with different contents", p)
	}
	im[p] = e
	return nil
}

// addHostFile records the host file src at p with src's permission bits.
func (im image) addHostFile(p, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	return im.add(p, imageEntry{mode: modeRegular | uint32(st.Mode().Perm()), src: src})
}

// paths returns the image's paths sorted so that parents precede children.
func (im image) paths() []string {
	ps := make([]string, 0, len(im))
	for p := range im {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// digest hashes every path, mode and content, naming the image in the cache.
func (im image) digest() (string, error) {
	h := sha256.New()
	for _, p := range im.paths() {
		e := im[p]
		fmt.Fprintf(h, "%s\x00%o\x00%s\x00%d:%d\x00%d\x00", p, e.mode, e.target, e.major, e.minor, len(e.data))
		h.Write(e.data)
		if e.src != "" {
			f, err := os.Open(e.src)
			if err != nil {
				return "", err
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return "", fmt.Errorf("read %s: %w", e.src, err)
			}
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// writeTo writes the image as a newc archive.
func (im image) writeTo(w io.Writer) error {
	cw := newCPIOWriter(w)
	for _, p := range im.paths() {
		e := im[p]
		name := strings.TrimPrefix(p, "/")
		perm := e.mode & 0o7777
		var err error
		switch e.mode & 0o170000 {
		case modeDir:
			err = cw.Dir(name, perm)
		case modeSymlink:
			err = cw.Symlink(name, e.target)
		case modeCharDev:
			err = cw.CharDev(name, perm, e.major, e.minor)
		default:
			if e.src == "" {
				err = cw.File(name, perm, int64(len(e.data)), bytes.NewReader(e.data))
				break
			}
			err = writeHostFile(cw, name, perm, e.src)
		}
		if err != nil {
			return err
		}
	}
	return cw.Close()
}

// writeHostFile streams a host file into the archive.
func writeHostFile(cw *cpioWriter, name string, perm uint32, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return cw.File(name, perm, st.Size(), f)
}

// ModulesDir is the directory inside the VM that holds the kernel modules
// of each kernel, under its release; /init loads those listed in its
// ModulesList file, in order.
const ModulesDir = "/lib/modules"

// ModulesList is the file, in a release's directory under ModulesDir, that
// names the modules /init loads, one a line.
const ModulesList = "vmtest.load"

// buildInitramfs assembles busybox, /init, the test binaries, the extra
// files and the kernels' modules into an image under <cache>/initramfs,
// reusing an identical image built earlier.
func buildInitramfs(ctx context.Context, cfg Config, mods []KernelModules) (Initramfs, error) {
	im, names, err := baseImage(ctx, cfg)
	if err != nil {
		return Initramfs{}, err
	}
	if err := im.addModules(mods); err != nil {
		return Initramfs{}, err
	}
	out, err := writeImage(im, filepath.Join(cfg.CacheDir, "initramfs"))
	if err != nil {
		return Initramfs{}, fmt.Errorf("initramfs: %w", err)
	}
	return Initramfs{Path: out, Tests: names}, nil
}

// baseImage assembles everything but the kernel modules, and returns the
// test binaries' basenames in the order /init runs them.
func baseImage(ctx context.Context, cfg Config) (image, []string, error) {
	im := image{}
	if interp, err := elfInterpreter(cfg.Busybox); err != nil {
		return nil, nil, fmt.Errorf("busybox %s: %w (install the busybox-static package)", cfg.Busybox, err)
	} else if interp != "" {
		return nil, nil, fmt.Errorf("busybox %s is dynamically linked; install the busybox-static package", cfg.Busybox)
	}
	if err := im.addHostFile("/bin/busybox", cfg.Busybox); err != nil {
		return nil, nil, fmt.Errorf("busybox: %w", err)
	}
	for _, dir := range []string{"/proc", "/sys", "/dev", "/tmp", "/run", "/sbin", "/usr/bin", "/usr/sbin", "/etc", "/root", TestsDir} {
		if err := im.add(dir, imageEntry{mode: modeDir | 0o755}); err != nil {
			return nil, nil, err
		}
	}
	// The kernel opens /dev/console for /init before devtmpfs is mounted.
	if err := im.add("/dev/console", imageEntry{mode: modeCharDev | 0o600, major: 5, minor: 1}); err != nil {
		return nil, nil, err
	}
	if err := im.add("/bin/sh", imageEntry{mode: modeSymlink | 0o777, target: "busybox"}); err != nil {
		return nil, nil, err
	}

	var names []string
	seen := map[string]string{}
	for _, t := range cfg.Tests {
		base := filepath.Base(t)
		if prev, ok := seen[base]; ok {
			return nil, nil, fmt.Errorf("test binaries %s and %s share the basename %s", prev, t, base)
		}
		seen[base] = t
		interp, err := elfInterpreter(t)
		if err != nil {
			return nil, nil, fmt.Errorf("test binary %s: %w", t, err)
		}
		if interp != "" {
			return nil, nil, fmt.Errorf("test binary %s is dynamically linked; build it with CGO_ENABLED=0 go test -c", t)
		}
		if err := im.addHostFile(path.Join(TestsDir, base), t); err != nil {
			return nil, nil, fmt.Errorf("test binary %s: %w", t, err)
		}
		names = append(names, base)
	}
	for _, x := range cfg.Extras {
		if err := im.addHostFile(x.Dst, x.Src); err != nil {
			return nil, nil, fmt.Errorf("extra %s:%s: %w", x.Src, x.Dst, err)
		}
		libs, err := sharedObjects(ctx, x.Src)
		if err != nil {
			return nil, nil, fmt.Errorf("extra %s: %w", x.Src, err)
		}
		for _, lib := range libs {
			if err := im.addHostFile(lib, lib); err != nil {
				return nil, nil, fmt.Errorf("extra %s: library %s: %w", x.Src, lib, err)
			}
		}
	}
	script := initScript(names, cfg.Run, testTimeout(cfg.Timeout))
	if err := im.add("/init", imageEntry{mode: modeRegular | 0o755, data: []byte(script)}); err != nil {
		return nil, nil, err
	}
	return im, names, nil
}

// addModules adds each kernel's module files under ModulesDir/<release>,
// with the list of their names in load order.
func (im image) addModules(mods []KernelModules) error {
	for _, km := range mods {
		if len(km.Files) == 0 {
			continue
		}
		dir := path.Join(ModulesDir, km.Release)
		var list strings.Builder
		for _, f := range km.Files {
			name := ModuleName(f)
			if err := im.addHostFile(path.Join(dir, name+".ko"), f); err != nil {
				return fmt.Errorf("module %s: %w", f, err)
			}
			list.WriteString(name + "\n")
		}
		e := imageEntry{mode: modeRegular | 0o644, data: []byte(list.String())}
		if err := im.add(path.Join(dir, ModulesList), e); err != nil {
			return err
		}
	}
	return nil
}

// testTimeout is the -test.timeout given to each test binary: three
// quarters of the VM's own timeout, which leaves room for the emulated boot,
// so that a hung test panics with its goroutine stacks on the console
// before the VM is killed.
func testTimeout(vm time.Duration) time.Duration {
	return vm * 3 / 4
}

// writeImage writes the compressed image into dir under a name derived from
// its content, unless that file exists already. Images unused for a day are
// removed.
func writeImage(im image, dir string) (string, error) {
	sum, err := im.digest()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, sum+".cpio.gz")
	now := time.Now()
	pruneImages(dir, dst, now.Add(-24*time.Hour))
	if _, err := os.Stat(dst); err == nil {
		return dst, os.Chtimes(dst, now, now)
	}
	tmp, err := os.CreateTemp(dir, ".initramfs-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	zw, err := gzip.NewWriterLevel(tmp, gzip.BestSpeed)
	if err != nil {
		tmp.Close()
		return "", err
	}
	err = im.writeTo(zw)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err != nil {
		return "", err
	}
	return dst, os.Rename(tmp.Name(), dst)
}

// pruneImages removes cached images other than keep last used before cutoff.
func pruneImages(dir, keep string, cutoff time.Time) {
	old, _ := filepath.Glob(filepath.Join(dir, "*.cpio.gz"))
	for _, p := range old {
		if st, err := os.Stat(p); err == nil && p != keep && st.ModTime().Before(cutoff) {
			os.Remove(p)
		}
	}
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// initScript returns the /init shell script: it moves the root into a
// tmpfs, mounts the pseudo file systems, loads the kernel's modules,
// reports the kernel and its LSM list, runs every test binary in its own
// tmpfs working directory, reports each exit code and powers off. Markers
// are printed after a newline so that test output lacking a final newline
// cannot hide them.
func initScript(tests []string, run string, timeout time.Duration) string {
	var b strings.Builder
	b.WriteString(`#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
/bin/busybox --install -s 2>/dev/null
# pivot_root, which runc sets up every container with, fails with EINVAL on
# the initramfs (rootfs, the root of the mount tree): copy it into a tmpfs
# and make that the root, then start over from there.
if [ -z "$RINGFENCE_VMTEST_ROOT" ] && mkdir /newroot && mount -t tmpfs -o mode=0755 root /newroot; then
	for e in /*; do
		[ "$e" = /newroot ] || cp -a "$e" /newroot/ || echo "vmtest-init: copying $e failed"
	done
	RINGFENCE_VMTEST_ROOT=tmpfs exec switch_root /newroot /init
fi
unset RINGFENCE_VMTEST_ROOT
mnt() {
	mkdir -p "$3"
	mount -t "$1" "$2" "$3" || echo "vmtest-init: mount $1 on $3 failed"
}
mnt proc proc /proc
mnt sysfs sysfs /sys
mnt devtmpfs devtmpfs /dev
mnt devpts devpts /dev/pts
# What udev would add: bash's process substitution needs /dev/fd.
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
mnt tmpfs shm /dev/shm
mnt securityfs securityfs /sys/kernel/security
mnt bpf bpffs /sys/fs/bpf
mnt tracefs tracefs /sys/kernel/tracing
mnt tmpfs tmpfs /tmp
mnt tmpfs tmpfs /run
mnt cgroup2 cgroup2 /sys/fs/cgroup
mods=` + ModulesDir + `/$(uname -r)
if [ -f "$mods/` + ModulesList + `" ]; then
	while read -r m; do
		insmod "$mods/$m.ko" || echo "vmtest-init: insmod $m failed"
	done <"$mods/` + ModulesList + `"
fi
# Container runtimes bind-mount these into containers on the host network.
[ -e /etc/hosts ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >/etc/hosts
[ -e /etc/resolv.conf ] || : >/etc/resolv.conf
ulimit -l unlimited 2>/dev/null
ip link set lo up 2>/dev/null
export HOME=/root
printf '\nRINGFENCE-KERNEL %s\n' "$(uname -r)"
printf '\nRINGFENCE-LSM %s\n' "$(cat /sys/kernel/security/lsm 2>/dev/null)"
run_test() {
	name=$1
	shift
	mkdir -p "/tmp/work/$name"
	cd "/tmp/work/$name"
	RINGFENCE_VMTEST=1 RINGFENCE_REQUIRE_PRIVILEGED=1 "/tests/$name" "$@" </dev/null 2>&1
	rc=$?
	cd /
	printf '\nRINGFENCE-RESULT %s %d\n' "$name" "$rc"
}
`)
	for _, t := range tests {
		args := []string{shellQuote(t), "-test.v", "-test.count=1"}
		if timeout > 0 {
			args = append(args, fmt.Sprintf("-test.timeout=%ds", int(timeout.Seconds())))
		}
		if run != "" {
			args = append(args, shellQuote("-test.run="+run))
		}
		b.WriteString("run_test " + strings.Join(args, " ") + "\n")
	}
	b.WriteString(`printf '\nRINGFENCE-DONE\n'
sync
poweroff -f
echo o >/proc/sysrq-trigger
`)
	return b.String()
}
