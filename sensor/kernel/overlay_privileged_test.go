package kernel

import (
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/ringfence/ringfence/test/testenv"
)

// TestPrivilegedOverlayKnown: once the loader has asked for overlayfs,
// the kernel's BTF describes it exactly when the kernel has it (built in,
// or a module with BTF), which is what the file hooks need to tell
// overlayfs's own work below a write.
func TestPrivilegedOverlayKnown(t *testing.T) {
	testenv.Privileged(t)
	requestOverlay()
	fss, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		t.Fatal(err)
	}
	has := false
	for _, line := range strings.Split(string(fss), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == "overlay" {
			has = true
		}
	}
	kernelBTF, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	if known := overlayKnown(kernelBTF); known != has {
		t.Errorf("overlayfs in /proc/filesystems: %v; struct ovl_fs in the kernel's BTF: %v", has, known)
	}
	t.Logf("overlayfs: %v", has)
}
