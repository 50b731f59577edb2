package sensor

import (
	"os"
	"testing"

	"github.com/ringfence/ringfence/test/testenv"
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
	os.Exit(testenv.RunCheckingFDs(m))
}
