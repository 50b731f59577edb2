package survival

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/hostfs"
	"github.com/ringfence/ringfence/test/runtime"
	"github.com/ringfence/ringfence/test/testenv"
)

// selectAll selects every container and lets none execute anything.
const selectAll = `
apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: everything}
spec:
  mode: enforce
  allowedRegistries: ["registry.internal"]
  bindInterfaces: {interfaces: ["lo"], ports: ["8080"]}
`

// hexID returns a random id of n bytes in hex: a container's (32) or a
// pod's uid (16).
func hexID(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// runIn runs this test binary, printing "ran", in the cgroup dir and
// returns once it ended or was refused, with what it printed.
func runIn(t *testing.T, dir string) (string, error) {
	t.Helper()
	fd, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), genEnv+"=ran")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fd.Fd())}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err // refused at exec (BPF LSM)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the process in %s neither ran nor was refused in 60 s", dir)
		return "", nil
	}
}

// TestPrivilegedSensorExemptFromItsPolicies runs the daemon in a container
// cgroup of a pod below a runtime parent, under an enforcing policy that
// selects every container and lets none execute anything. A container
// beside it is refused; the daemon's own cgroup is not: what runs there
// runs, and a daemon restarted in a new container of the pod while no
// daemon ran is neither held nor refused.
func TestPrivilegedSensorExemptFromItsPolicies(t *testing.T) {
	testenv.Privileged(t)
	a, _ := builds(t)
	rt := runtime.Start(t)
	root, err := hostfs.Cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	// The layout of a kubelet's cgroupfs driver: the runtime parent, a
	// QoS class, pods, their containers.
	parent := fmt.Sprintf("kubepods-rf-self-%d", os.Getpid())
	mk := func(rel string) string {
		t.Helper()
		dir := filepath.Join(root, parent, rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeCgroup(t, dir) })
		return dir
	}
	pod := "burstable/pod" + hexID(t, 16)
	other := "burstable/pod" + hexID(t, 16)
	mk("")
	mk("burstable")
	mk(pod)
	n := newNode(t, rt, selectAll)
	n.extra = []string{"--container-parent", parent}
	n.cgroup = mk(pod + "/" + hexID(t, 32))
	n.cleanup(a)
	n.start(a)

	// Beside it, a container under the policy: nothing may execute.
	mk(other)
	if out, err := runIn(t, mk(other+"/"+hexID(t, 32))); err == nil || bytes.Contains([]byte(out), []byte("ran")) {
		t.Fatalf("a container selected by the policy executed: %v %q", err, out)
	}
	// In the daemon's own cgroup, the same runs.
	if out, err := runIn(t, n.cgroup); err != nil || out != "ran\n" {
		t.Fatalf("the daemon's own cgroup is judged by its policy: %v %q", err, out)
	}

	// Restarted, as the container's runtime restarts it, in a new
	// container cgroup of its pod made while no daemon runs.
	n.stop(syscall.SIGKILL)
	n.cgroup = mk(pod + "/" + hexID(t, 32))
	beside := mk(other + "/" + hexID(t, 32))
	refused := make(chan error, 1)
	go func() {
		out, err := runIn(t, beside)
		if err == nil || bytes.Contains([]byte(out), []byte("ran")) {
			err = fmt.Errorf("a container started while no daemon ran executed: %v %q", err, out)
		} else {
			err = nil
		}
		refused <- err
	}()
	n.start(a) // not held: it would never be ready
	if out, err := runIn(t, n.cgroup); err != nil || out != "ran\n" {
		t.Fatalf("the restarted daemon's cgroup is judged by its policy: %v %q", err, out)
	}
	if err := <-refused; err != nil {
		t.Fatal(err)
	}
}

// removeCgroup kills what is left in a cgroup the test made (a process a
// failed test left held) and removes it.
func removeCgroup(t *testing.T, dir string) {
	os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.Remove(dir)
		if err == nil || os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("remove cgroup %s: %v", dir, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
