package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/posture"
	"github.com/ringfence/ringfence/sensor/status"
	"github.com/ringfence/ringfence/test/runtime"
	"github.com/ringfence/ringfence/test/testenv"
)

const cliPolicy = `apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: no-privileged}
spec:
  mode: audit
  selector: {names: ["cli-*"]}
  denyPrivileged: true
`

// TestHostStartRefusesABrokenPolicy: the daemon does not start on an invalid
// policy file, and says every problem with its line and field.
func TestHostStartRefusesABrokenPolicy(t *testing.T) {
	testenv.Privileged(t)
	bin := build(t)
	file := filepath.Join(t.TempDir(), "broken.yaml")
	os.WriteFile(file, []byte("apiVersion: ringfence.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: b}\nspec:\n  mode: sometimes\n  bindInterfaces: {interfaces: [eth0], ports: [\"70000\"]}\n"), 0o644)
	dir := t.TempDir()
	out, err := exec.Command(bin, "run", "--policy", file, "--store", "", "--api-socket", filepath.Join(dir, "s"), "--metrics-addr", "", "--containerd-socket", "").CombinedOutput()
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{file + ":5: spec.mode", file + ":6: spec.bindInterfaces.ports[0]"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestHostPolicyPostureAndReload runs the daemon with a policy and a real
// containerd: a privileged container shows in `ringfence posture` and
// violates the policy, `ringfence containers` names its policy, and a
// SIGHUP with a broken file keeps the policy in force, as status shows.
func TestHostPolicyPostureAndReload(t *testing.T) {
	testenv.Privileged(t)
	rt := runtime.Start(t)
	bin := build(t)
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(cliPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, bin, "--containerd-socket", rt.Socket, "--policy", policyFile)
	priv := rt.NewID(t, "cli")
	rt.With("--privileged").RunDetached(t, priv, "sleep", "60")
	plain := rt.NewID(t, "cli")
	rt.With("--read-only", "--seccomp").RunDetached(t, plain, "sleep", "60")

	// posture, both outputs
	var reports []posture.Report
	waitCLI(t, "posture of both containers", func() bool {
		out := runCLI(t, bin, "posture", "--api-socket", d.socket(), "-o", "json")
		reports = nil
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var r posture.Report
			if json.Unmarshal([]byte(line), &r) == nil {
				reports = append(reports, r)
			}
		}
		return findings(reports, priv) != nil && findings(reports, plain) != nil
	})
	if f := findings(reports, priv); !f["5.5"] || !f["5.4"] || !f["5.13"] {
		t.Errorf("privileged container findings %v: want 5.4, 5.5 and 5.13", f)
	}
	if f := findings(reports, plain); f["5.5"] || f["5.13"] || f["5.22"] || !f["4.1"] {
		t.Errorf("read-only, seccomp container findings %v: want 4.1 and not 5.5, 5.13, 5.22", f)
	}
	table := runCLI(t, bin, "posture", "--api-socket", d.socket())
	if !strings.Contains(table, priv) || !strings.Contains(table, "5.5") {
		t.Errorf("posture table lacks the privileged container:\n%s", table)
	}

	// the violation, in the store
	waitCLI(t, "privileged violation", func() bool {
		out := runCLI(t, bin, "events", "--store", d.store(), "--kind", "violation", "--container", priv, "-o", "json")
		return strings.Contains(out, `"rule":"denyPrivileged"`) && strings.Contains(out, `"verdict":"audit"`) && strings.Contains(out, `"policy":"no-privileged"`)
	})
	if out := runCLI(t, bin, "containers", "--api-socket", d.socket()); !strings.Contains(out, "no-privileged") {
		t.Errorf("containers does not name the policy:\n%s", out)
	}

	// SIGHUP with a broken file: refused, generation 1 stays.
	if err := os.WriteFile(policyFile, []byte(strings.Replace(cliPolicy, "mode: audit", "mode: loud", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	var snap status.Snapshot
	waitCLI(t, "refusal in status", func() bool {
		json.Unmarshal([]byte(runCLI(t, bin, "status", "--api-socket", d.socket(), "-o", "json")), &snap)
		return snap.Policy != nil && len(snap.Policy.Rejected) > 0
	})
	if snap.Policy.Generation != 1 || !strings.Contains(snap.Policy.Rejected[0], "spec.mode") || len(snap.Policy.Policies) != 1 {
		t.Errorf("policy status after a broken reload: %+v", snap.Policy)
	}
	if snap.Violations["no-privileged/denyPrivileged/audit"] == 0 {
		t.Errorf("status counts no violation: %v", snap.Violations)
	}
	text := runCLI(t, bin, "status", "--api-socket", d.socket())
	if !strings.Contains(text, "refused:") || !strings.Contains(text, "generation:") {
		t.Errorf("status text lacks the policy section:\n%s", text)
	}
}

func findings(reports []posture.Report, id string) map[string]bool {
	for _, r := range reports {
		if r.Container.ID == id {
			f := map[string]bool{}
			for _, x := range r.Findings {
				f[x.Check] = true
			}
			return f
		}
	}
	return nil
}

func runCLI(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("ringfence %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func waitCLI(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 20 s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
