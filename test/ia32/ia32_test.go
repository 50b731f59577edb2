//go:build linux && amd64

package ia32

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/kernel"
)

// childEnv makes the test binary, run again as a child, make one ia32 open
// of the path it names and exit.
const childEnv = "RINGFENCE_IA32_CHILD_OPEN"

func TestMain(m *testing.M) {
	if p := os.Getenv(childEnv); p != "" {
		if err := create(p); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// create makes an ia32 open(O_CREAT) of path.
func create(path string) error {
	m, err := NewMem()
	if err != nil {
		return err
	}
	defer m.Close()
	p, err := m.String(path)
	if err != nil {
		return err
	}
	fd, err := Syscall(SysOpen, p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("ia32 open: %w", err)
	}
	return unix.Close(int(fd))
}

// TestIA32Entry checks the package on whichever machine it runs: where the
// ia32 entry is open, an ia32 open creates the file and an ia32 readlink
// reads a link, with the ia32 numbers; where it is refused, a process that
// tries is killed by the fault and creates nothing.
func TestIA32Entry(t *testing.T) {
	world, err := kernel.ProbeIA32()
	if err != nil {
		t.Fatal(err)
	}
	t.Log("this machine: " + world.How)
	dir := t.TempDir()
	f := filepath.Join(dir, "created")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+f)
	out, err := cmd.CombinedOutput()
	if !world.Allowed {
		if !world.Closed(err) {
			t.Fatalf("the probe says 32-bit syscalls fault, yet an ia32 open ended with %v: %s", err, out)
		}
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a refused ia32 open made %s: %v", f, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("ia32 open in a child: %v: %s", err, out)
	}
	if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ia32 open did not create %s with mode 0600: %v", f, err)
	}
	m, err := NewMem()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
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
