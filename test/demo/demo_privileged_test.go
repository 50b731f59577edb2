// Package demo runs scripts/demo.sh, the demo `make demo` shows, and
// checks what it shows: on this host the tier's audit-only rules say so,
// and in the VMs (`make demo-vm`) every rule is enforced.
package demo

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/test/testenv"
)

// InVMDir is where the VM harness puts the binary, the script and what it
// needs (see the Makefile's vmtest target).
const InVMDir = "/opt/ringfence"

func TestPrivilegedDemo(t *testing.T) {
	testenv.Privileged(t)
	var cmd *exec.Cmd
	if testenv.InVM() {
		cmd = exec.Command(filepath.Join(InVMDir, "scripts/demo.sh"), filepath.Join(InVMDir, "ringfence"))
		cmd.Env = append(os.Environ(),
			"RF_CONTAINERD_SH="+filepath.Join(InVMDir, "test/runtime/containerd.sh"),
			"RF_DEMO_POLICY="+filepath.Join(InVMDir, "deploy/policies/demo.yaml"))
	} else {
		bin := filepath.Join(t.TempDir(), "ringfence")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/ringfence/ringfence/cmd/ringfence").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		cmd = exec.Command("../../scripts/demo.sh", bin)
	}
	out, err := cmd.CombinedOutput()
	t.Logf("demo output:\n%s", out)
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	want := []string{
		"write /tmp/scratch: allowed",
		"listen on 0.0.0.0:9090: refused",
		"listen on 127.0.0.1:8080: allowed",
		"web/bindInterfaces (enforce): accepting traffic outside the allowed interfaces and ports: bind tcp 0.0.0.0 port 9090",
		"no-privileged/denyPrivileged (audit): privileged container",
	}
	if testenv.InVM() {
		if !lineWith(string(out), "tier:", " full") {
			t.Errorf("the demo does not show the full tier")
		}
		want = append(want, "write /etc/passwd: refused", "container output: exec /bin/echo: operation not permitted",
			"web/readOnlyRootFilesystem (enforce): write to the container's read-only root filesystem: open /etc/passwd")
	} else {
		want = append(want, "<nothing: killed before its first instruction>", "readOnlyRootFilesystem  no           audit only, not enforceable on this kernel", "write /etc/passwd: succeeded",
			"web/readOnlyRootFilesystem (enforce): write to the container's read-only root filesystem: not enforceable on this kernel: create /etc/passwd")
	}
	// The posture table's columns are as wide as the longest name, and a
	// node sensor lists every container of the node (other tests may have
	// some running): match the row by its fields.
	if !lineWith(string(out), "demo-priv-1 ", " 5.5 ", " high ", "Ensure that privileged containers are not used") {
		t.Errorf("the demo does not show demo-priv-1 failing check 5.5 (high)")
	}
	// Killed by the kernel at exec, or by the daemon as the hold ends:
	// the reason says which, the rest is the same.
	if !lineWith(string(out), "provenance/allowedRegistries (enforce): image not from an allowed registry", "exec /bin/echo") {
		t.Errorf("the demo does not show the registry violation")
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("the demo does not show %q", w)
		}
	}
}

// lineWith reports whether a line of out contains every part.
func lineWith(out string, parts ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
