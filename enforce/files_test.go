package enforce

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validPolicy = `apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: p}
spec: {mode: audit, denyPrivileged: true}
`

// TestLoadPathsMode refuses what others could write, and a file too
// large, without reading it whole.
func TestLoadPathsMode(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.yaml")
	if err := os.WriteFile(ok, []byte(validPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	if pols, _, problems := LoadPaths(ok); len(problems) > 0 || len(pols) != 1 {
		t.Fatalf("a file of its owner's: %v %v", pols, problems)
	}
	for _, mode := range []os.FileMode{0o666, 0o664} {
		if err := os.Chmod(ok, mode); err != nil {
			t.Fatal(err)
		}
		checkRefused(t, ok, "lets others write it")
	}
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: a 1 GiB file costs nothing, and reading it whole would.
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	checkRefused(t, big, "larger than")
}

func checkRefused(t *testing.T, path, want string) {
	t.Helper()
	_, _, problems := LoadPaths(path)
	if len(problems) != 1 || !strings.Contains(problems[0].Message, want) || problems[0].File != path {
		t.Fatalf("%s: problems %v, want one saying %q", path, problems, want)
	}
}

// TestProblemsEvery: the error a refused start returns says every problem.
func TestProblemsEvery(t *testing.T) {
	ps := Problems{{File: "a.yaml", Line: 5, Path: "spec.mode", Message: "bad"}, {File: "a.yaml", Line: 6, Path: "spec.bindInterfaces.ports[0]", Message: "out of range"}}
	got := ps.Every().Error()
	want := "a.yaml:5: spec.mode: bad\na.yaml:6: spec.bindInterfaces.ports[0]: out of range"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
