// Package fake builds stand-ins for the host's pseudo-filesystems (a /proc,
// a cgroup tree) in temporary directories, for tests that must not need
// root or a particular host.
package fake

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir writes files, by path relative to a new temporary directory, and
// returns the directory: a stand-in for /proc or a cgroup2 mount.
func Dir(tb testing.TB, files map[string]string) string {
	tb.Helper()
	root := tb.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return root
}
