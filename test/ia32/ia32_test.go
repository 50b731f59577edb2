//go:build linux && amd64

package ia32

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestIA32Entry checks the package itself: an ia32 open creates the file
// and an ia32 readlink reads a link, with the ia32 numbers.
func TestIA32Entry(t *testing.T) {
	m, err := NewMem()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dir := t.TempDir()
	f := filepath.Join(dir, "created")
	p, err := m.String(f)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := Syscall(SysOpen, p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatalf("ia32 open: %v", err)
	}
	unix.Close(int(fd))
	if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ia32 open did not create %s with mode 0600: %v", f, err)
	}
	l := filepath.Join(dir, "link")
	if err := os.Symlink("target-of-link", l); err != nil {
		t.Fatal(err)
	}
	lp, _ := m.String(l)
	buf, _ := m.Alloc(64)
	n, err := Syscall(SysReadlink, lp, buf, 64)
	if err != nil || n != int32(len("target-of-link")) {
		t.Fatalf("ia32 readlink: %d, %v", n, err)
	}
}
