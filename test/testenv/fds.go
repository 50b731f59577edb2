package testenv

import (
	"fmt"
	"net"
	"os"
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
	if after := CountFDs() - hostLockFDs(); code == 0 && after > before {
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
