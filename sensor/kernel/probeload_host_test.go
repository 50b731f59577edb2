package kernel

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/test/testenv"
)

const probeLoadChildEnv = "RINGFENCE_PROBELOAD_CHILD"

// TestHostProbeLoadWithoutCapabilities: root without CAP_BPF, CAP_PERFMON,
// CAP_NET_ADMIN and CAP_SYS_ADMIN (dropped from the bounding set, as a
// container's capabilities are) is told it cannot load the programs, by
// name: the check a daemon in standby passes before it says it is ready.
func TestHostProbeLoadWithoutCapabilities(t *testing.T) {
	if os.Getenv(probeLoadChildEnv) == "1" {
		if err := ProbeLoad(); err != nil {
			os.Stdout.WriteString("ProbeLoad: " + err.Error() + "\n")
			os.Exit(3)
		}
		os.Exit(0)
	}
	testenv.Privileged(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is needed to drop capabilities: %v", err)
	}
	if err := ProbeLoad(); err != nil {
		t.Fatalf("ProbeLoad with every capability: %v", err)
	}
	cmd := exec.Command(setpriv, "--bounding-set=-bpf,-perfmon,-net_admin,-sys_admin", "--inh-caps=-all", "--",
		os.Args[0], "-test.run=^TestHostProbeLoadWithoutCapabilities$")
	cmd.Env = append(os.Environ(), probeLoadChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("ProbeLoad without the capabilities: %v %s; want it refused", err, out)
	}
	if !strings.Contains(string(out), "a tracing program") || !strings.Contains(string(out), "operation not permitted") {
		t.Errorf("ProbeLoad without the capabilities said %q; want the tracing program named, not permitted", out)
	}
}
