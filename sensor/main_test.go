package sensor

import (
	"fmt"
	"net"
	"os"
	"testing"
)

// TestMain runs the child-process helper when asked to, and otherwise fails
// the package when a test leaked a file descriptor (an unclosed map, link,
// program or ring reader).
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "batch" {
		os.Exit(runBatch(os.Args[len(os.Args)-helperArgc():]))
	}
	if op := os.Getenv(helperEnv); op != "" {
		os.Exit(runHelper(op, os.Args[len(os.Args)-helperArgc():]))
	}
	warmUpRuntimeFDs()
	before := countFDs()
	code := m.Run()
	if after := countFDs(); code == 0 && after > before {
		fmt.Fprintf(os.Stderr, "leaked file descriptors: %d open before the tests, %d after\n", before, after)
		code = 1
	}
	os.Exit(code)
}

// warmUpRuntimeFDs makes the Go runtime open the descriptors it keeps for
// the life of the process (the network poller), so they are not counted as leaks.
func warmUpRuntimeFDs() {
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
	}
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}
