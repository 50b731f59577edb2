package enforce

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ringfence/ringfence/test/testenv"
)

// TestPrivilegedLoadPathsOwner refuses a policy file another user owns
// (giving a file away needs root).
func TestPrivilegedLoadPathsOwner(t *testing.T) {
	testenv.Privileged(t)
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(validPolicy), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	other := write("other.yaml", 0o644)
	if err := os.Chown(other, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	checkRefused(t, other, "owned by uid 65534")
}
