package testenv

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// RunCheckingFDs runs the package's tests and returns their exit code,
// turned into a failure when they left more file descriptors open than
// there were before (an unclosed map, link, socket or namespace).
func RunCheckingFDs(m *testing.M) int {
	warmUpRuntimeFDs()
	before := CountFDs()
	code := m.Run()
	// The host lock, taken by the first privileged test, is held until exit.
	if after := CountFDs() - hostLockFDs() - profileFDs(); code == 0 && after > before {
		fmt.Fprintf(os.Stderr, "leaked file descriptors: %d open before the tests, %d after\n", before, after)
		code = 1
	}
	return code
}

// CountFDs returns the number of file descriptors this process has open.
func CountFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// warmUpRuntimeFDs makes the Go runtime open the descriptors it keeps for
// the life of the process (the network poller), so they are not counted as
// leaks.
func warmUpRuntimeFDs() {
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
	}
}

// profileFDs counts the descriptors open on the files go test writes
// profiles to (-cpuprofile and the like), which the testing package opens
// while the tests run and leaves open.
func profileFDs() int {
	files := map[string]bool{}
	for _, name := range []string{"test.cpuprofile", "test.memprofile", "test.blockprofile", "test.mutexprofile", "test.trace", "test.coverprofile"} {
		f := flag.Lookup(name)
		if f == nil || f.Value.String() == "" {
			continue
		}
		p := f.Value.String()
		if d := flag.Lookup("test.outputdir"); d != nil && d.Value.String() != "" && !filepath.IsAbs(p) {
			p = filepath.Join(d.Value.String(), p)
		}
		if abs, err := filepath.Abs(p); err == nil {
			files[abs] = true
		}
	}
	if len(files) == 0 {
		return 0
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && files[target] {
			n++
		}
	}
	return n
}
