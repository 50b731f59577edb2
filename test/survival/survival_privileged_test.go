// Package survival tests that the rules outlive the daemon: containers try
// forbidden things without pause while the daemon is killed, stopped,
// restarted, upgraded to another build, handed a build that cannot attach,
// and uninstalled; not one attempt may succeed until the uninstall.
package survival

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/ringfence/ringfence/sensor/api"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/kernel"
	"github.com/ringfence/ringfence/sensor/status"
	"github.com/ringfence/ringfence/test/runtime"
	"github.com/ringfence/ringfence/test/testenv"
)

// inVMDir is where the VM harness puts the two builds (Makefile, vmtest).
const inVMDir = "/opt/ringfence"

// builds returns two ringfence binaries whose programs differ (their build
// versions do, and the pinned programs record it).
func builds(t *testing.T) (a, b string) {
	t.Helper()
	if testenv.InVM() {
		return filepath.Join(inVMDir, "ringfence"), filepath.Join(inVMDir, "ringfence-b")
	}
	dir := t.TempDir()
	for _, v := range []string{"a", "b"} {
		out, err := exec.Command("go", "build", "-ldflags", "-X main.version=survival-"+v, "-o", filepath.Join(dir, v), "github.com/ringfence/ringfence/cmd/ringfence").CombinedOutput()
		if err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	return filepath.Join(dir, "a"), filepath.Join(dir, "b")
}

const policy = `
apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: survival}
spec:
  mode: enforce
  selector: {names: ["rf-surv-*"]}
  readOnlyRootFilesystem: {allowWrites: ["/tmp/**"]}
  bindInterfaces: {interfaces: ["lo"], ports: ["8080"]}
---
apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: survival-registry}
spec:
  mode: enforce
  selector: {names: ["rf-untrusted-*"]}
  allowedRegistries: ["registry.internal"]
`

// node is the daemon of one test, started, killed and started again on the
// same pins, store and socket.
type node struct {
	t                          *testing.T
	rt                         *runtime.Runtime
	dir, pins, policy, results string
	self                       string
	// extra are flags after the common ones; cgroup, when set, is the
	// cgroup v2 directory the daemon starts in.
	extra  []string
	cgroup string
	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	out    *bytes.Buffer
}

func newNode(t *testing.T, rt *runtime.Runtime, policy string) *node {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, rt: rt, dir: t.TempDir(), results: t.TempDir(), self: self,
		pins: fmt.Sprintf("%s/ringfence-survival-%d-%s", kernel.BPFFSPath, os.Getpid(), t.Name())}
	n.policy = filepath.Join(n.dir, "policy.yaml")
	if err := os.WriteFile(n.policy, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *node) args() []string {
	return append([]string{"run", "--policy", n.policy, "--containerd-socket", n.rt.Socket, "--container-parent", n.rt.Namespace,
		"--store", filepath.Join(n.dir, "store"), "--api-socket", filepath.Join(n.dir, "api.sock"), "--metrics-addr", "",
		"--stdout=false", "--interval", "200ms", "--hold-timeout", "10s", "--bpffs", n.pins}, n.extra...)
}

// start runs bin as the daemon and returns its status once it is ready.
// readyWait is how long a daemon may take to be ready: the test VMs'
// kernels verify the full program set in 3-5 s on one emulated vCPU (a
// minute on 6.12 when the set's path walks exploded the verifier's states),
// and an upgrade loads a second set beside the pinned one.
const readyWait = 3 * time.Minute

// pinnedState names the pinned state a snapshot reports.
func pinnedState(s *status.Snapshot) string {
	if s.Pinned == nil {
		return "none"
	}
	return s.Pinned.State
}

func (n *node) start(bin string, env ...string) *status.Snapshot {
	n.t.Helper()
	n.mu.Lock()
	n.cmd = exec.Command(bin, n.args()...)
	n.cmd.Env = append(os.Environ(), env...)
	n.out = &bytes.Buffer{}
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if n.cgroup != "" {
		fd, err := os.Open(n.cgroup)
		if err != nil {
			n.mu.Unlock()
			n.t.Fatal(err)
		}
		defer fd.Close()
		n.cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fd.Fd())}
	}
	if err := n.cmd.Start(); err != nil {
		n.mu.Unlock()
		n.t.Fatal(err)
	}
	n.done = make(chan struct{})
	cmd, done := n.cmd, n.done
	go func() { cmd.Wait(); close(done) }()
	n.mu.Unlock()
	started := time.Now()
	deadline := started.Add(readyWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		snap, err := api.NewClient(filepath.Join(n.dir, "api.sock")).Status(ctx)
		cancel()
		if err == nil && snap.Ready && snap.PID == cmd.Process.Pid {
			n.t.Logf("%s ready in %s (pinned state %s)", filepath.Base(bin), time.Since(started).Round(time.Millisecond), pinnedState(snap))
			return snap
		}
		select {
		case <-done:
			n.t.Fatalf("%s exited before it was ready: %v\n%s", bin, cmd.ProcessState, n.out)
		default:
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s not ready after %s: %v\n%s", bin, readyWait, err, n.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cleanup stops the daemon and removes its pins with bin when the test ends.
func (n *node) cleanup(bin string) {
	n.t.Cleanup(func() {
		n.stop(syscall.SIGTERM)
		if _, err := os.Stat(n.pins); err == nil {
			if out, err := exec.Command(bin, "uninstall", "--bpffs", n.pins).CombinedOutput(); err != nil {
				n.t.Errorf("uninstall: %v\n%s", err, out)
			}
		}
	})
}

// log returns what the running daemon wrote so far.
func (n *node) log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.out == nil {
		return ""
	}
	return n.out.String()
}

// startFails runs bin as the daemon and returns its output once it has
// exited non-zero.
func (n *node) startFails(bin string, env ...string) string {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, n.args()...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		n.t.Fatalf("%s neither started nor failed in %s:\n%s", bin, readyWait, out)
	}
	if err == nil {
		n.t.Fatalf("%s started and exited 0, want a refusal:\n%s", bin, out)
	}
	return string(out)
}

// stop ends the running daemon with sig and waits for it.
func (n *node) stop(sig syscall.Signal) {
	n.t.Helper()
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		n.t.Fatalf("the daemon ignored %v for 30 s:\n%s", sig, n.out)
	}
}

// attempt is one try of the generator: its time, what (bind or write) and
// how it ended ("ok" or the errno's name).
type attempt struct {
	at       time.Time
	op, res  string
	where    string // the container
	lineText string
}

// attempts reads what the generator of container id wrote.
func (n *node) attempts(id string) []attempt {
	n.t.Helper()
	f, err := os.Open(filepath.Join(n.results, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		n.t.Fatal(err)
	}
	defer f.Close()
	var out []attempt
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			continue // a line cut by a kill
		}
		ns, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, attempt{at: time.Unix(0, ns), op: fields[1], res: fields[2], where: id, lineText: sc.Text()})
	}
	return out
}

// forbidden reports whether an attempt is one the rules refuse on this
// tier: binds everywhere, writes to the root filesystem with BPF LSM.
func forbidden(a attempt) bool {
	return a.op == "bind" || a.op == "write" && testenv.InVM()
}

// noneSucceeded fails the test for every forbidden attempt that succeeded.
func (n *node) noneSucceeded(ids ...string) {
	n.t.Helper()
	for _, id := range ids {
		for _, a := range n.attempts(id) {
			if forbidden(a) && a.res == "ok" {
				n.t.Fatalf("a forbidden %s of %s succeeded at %s", a.op, id, a.at.Format(time.RFC3339Nano))
			}
		}
	}
}

// waitAttempts waits for k forbidden attempts of id after since and returns
// them.
func (n *node) waitAttempts(id string, k int, since time.Time) []attempt {
	n.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var got []attempt
		for _, a := range n.attempts(id) {
			if forbidden(a) && a.at.After(since) {
				got = append(got, a)
			}
		}
		if len(got) >= k {
			return got
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s made %d forbidden attempts since %s, want %d", id, len(got), since.Format(time.RFC3339Nano), k)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countBetween counts the forbidden attempts of id in [from, to].
func (n *node) countBetween(id string, from, to time.Time) int {
	k := 0
	for _, a := range n.attempts(id) {
		if forbidden(a) && !a.at.Before(from) && !a.at.After(to) {
			k++
		}
	}
	return k
}

// generator starts a container under the survival policy running this test
// binary's loop of forbidden binds and writes.
func (n *node) generator(id string) *runtime.Container {
	n.t.Helper()
	return n.rt.With(
		"--mount", "type=bind,src="+n.self+",dst=/rf-survival,options=rbind:ro",
		"--mount", "type=bind,src="+n.results+",dst=/results,options=rbind:rw",
		"--env", genEnv+"=loop", "--env", outEnv+"=/results/"+id,
	).RunDetached(n.t, id, "/rf-survival")
}

// untrusted starts a container that every exec is forbidden in; had it run
// its entrypoint, it would have said so.
func (n *node) untrusted(id string) *runtime.Container {
	n.t.Helper()
	return n.rt.RunDetached(n.t, id, "echo", "entrypoint ran")
}

// refused waits until the untrusted container is stopped without its
// entrypoint having run.
func (n *node) refused(c *runtime.Container) {
	n.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if out := c.Output(n.t); strings.Contains(out, "entrypoint ran") {
			n.t.Fatalf("the entrypoint of %s ran: %s\ndaemon:\n%s", c.ID, out, n.log())
		}
		if s := c.Status(n.t); s == "STOPPED" || s == "" {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s still %s after 60 s", c.ID, c.Status(n.t))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pinnedIDs returns the ids of the links pinned under the node's pins and
// of their programs.
func (n *node) pinnedIDs() (links []link.ID, progs []ebpf.ProgramID) {
	n.t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.pins, "links"))
	if err != nil {
		n.t.Fatal(err)
	}
	for _, e := range entries {
		l, err := link.LoadPinnedLink(filepath.Join(n.pins, "links", e.Name()), nil)
		if err != nil {
			n.t.Fatal(err)
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			n.t.Fatal(err)
		}
		links = append(links, info.ID)
		progs = append(progs, info.Program)
	}
	if len(links) == 0 {
		n.t.Fatal("no link pinned")
	}
	return links, progs
}

// offlineViolations returns the stored violations the kernel recorded
// while no daemon read its ring, in [from, to].
func (n *node) offlineViolations(bin string, from, to time.Time) int {
	n.t.Helper()
	out, err := exec.Command(bin, "events", "--store", filepath.Join(n.dir, "store"), "--kind", "violation", "-o", "json",
		"--since", from.Add(-time.Second).Format(time.RFC3339Nano)).Output()
	if err != nil {
		n.t.Fatalf("ringfence events: %v", err)
	}
	k := 0
	for _, line := range bytes.Split(out, []byte("\n")) {
		var e event.Event
		if json.Unmarshal(line, &e) != nil {
			continue
		}
		if e.Offline && !e.Time.Before(from) && !e.Time.After(to) {
			k++
		}
	}
	return k
}

// TestPrivilegedRulesOutliveTheDaemon: two containers and three untrusted
// ones against a daemon killed, stopped, restarted, upgraded, given a build
// that cannot attach, and uninstalled. Until the uninstall no forbidden
// attempt succeeds; a container started while no daemon runs is held until
// one classifies it; what the kernel recorded meanwhile is stored, marked
// offline; the uninstall removes exactly the daemon's pins, after which the
// same bind succeeds and the held container is let go.
func TestPrivilegedRulesOutliveTheDaemon(t *testing.T) {
	testenv.Privileged(t)
	a, b := builds(t)
	rt := runtime.Start(t)
	n := newNode(t, rt, policy)
	n.cleanup(a)

	// Up: the first container is refused from its first attempt.
	if snap := n.start(a); snap.Pinned == nil || snap.Pinned.State != string(kernel.StateNew) {
		t.Fatalf("first start: pinned %+v", snap.Pinned)
	}
	c1 := rt.NewID(t, "rf-surv")
	n.generator(c1)
	n.waitAttempts(c1, 20, time.Time{})
	n.noneSucceeded(c1)

	// kill -9: the rules stay; a container started now is held.
	n.stop(syscall.SIGKILL)
	down := time.Now()
	c2 := rt.NewID(t, "rf-surv")
	n.generator(c2)
	u1 := n.untrusted(rt.NewID(t, "rf-untrusted"))
	time.Sleep(3 * time.Second)
	up := time.Now()
	if k := n.countBetween(c1, down, up); k < 20 {
		t.Fatalf("%s made only %d forbidden attempts in the %s without a daemon", c1, k, up.Sub(down))
	}
	if got := n.attempts(c2); len(got) > 0 {
		t.Fatalf("%s, started while no daemon ran, was not held: %d attempts, the first %q", c2, len(got), got[0].lineText)
	}
	n.noneSucceeded(c1, c2)

	// Restart: the same build adopts the pins; the held containers are
	// classified and run (or are refused) under their rules.
	if snap := n.start(a); snap.Pinned == nil || snap.Pinned.State != string(kernel.StateAdopted) {
		t.Fatalf("restart: pinned %+v", snap.Pinned)
	}
	n.waitAttempts(c2, 20, time.Time{})
	n.refused(u1)
	n.noneSucceeded(c1, c2)
	deadline := time.Now().Add(30 * time.Second)
	for n.offlineViolations(a, down, up) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no violation of the %s without a daemon is stored marked offline", up.Sub(down))
		}
		time.Sleep(200 * time.Millisecond)
	}

	// SIGTERM: the same, and a restart adopts again.
	n.stop(syscall.SIGTERM)
	down = time.Now()
	u2 := n.untrusted(rt.NewID(t, "rf-untrusted"))
	time.Sleep(2 * time.Second)
	if k := n.countBetween(c1, down, time.Now()); k < 10 {
		t.Fatalf("%s made only %d forbidden attempts after SIGTERM", c1, k)
	}
	if snap := n.start(a); snap.Pinned.State != string(kernel.StateAdopted) {
		t.Fatalf("restart after SIGTERM: %s", snap.Pinned.State)
	}
	n.refused(u2)
	n.noneSucceeded(c1, c2)

	// Upgrade: another build replaces the programs.
	n.stop(syscall.SIGTERM)
	snap := n.start(b)
	if snap.Pinned.State != string(kernel.StateUpgrade) || snap.Pinned.FoundVersion != versionOf(t, a) {
		t.Fatalf("upgrade: pinned %+v, want upgrade from %s", snap.Pinned, versionOf(t, a))
	}
	n.waitAttempts(c1, 20, time.Now())
	n.noneSucceeded(c1, c2)

	// A build whose programs cannot attach leaves the set in force.
	n.stop(syscall.SIGTERM)
	linksBefore, _ := n.pinnedIDs()
	if out := n.startFails(a, "RINGFENCE_FAILPOINT=attach:rf_bind4"); !strings.Contains(out, "rf_bind4") {
		t.Fatalf("the failed upgrade does not say which program failed:\n%s", out)
	}
	if linksAfter, _ := n.pinnedIDs(); fmt.Sprint(linksAfter) != fmt.Sprint(linksBefore) {
		t.Fatalf("a failed upgrade changed the pinned links: %v, were %v", linksAfter, linksBefore)
	}
	n.waitAttempts(c1, 20, time.Now())
	n.noneSucceeded(c1, c2)
	if snap := n.start(b); snap.Pinned.State != string(kernel.StateAdopted) {
		t.Fatalf("after the failed upgrade: %s, want the set of %s adopted", snap.Pinned.State, versionOf(t, b))
	}

	// Uninstall: exactly the daemon's pins go, the held container is let
	// go, and the bind refused so far succeeds.
	n.stop(syscall.SIGTERM)
	u3 := n.untrusted(rt.NewID(t, "rf-untrusted"))
	links, progs := n.pinnedIDs()
	foreign := foreignPin(t)
	out, err := exec.Command(b, "uninstall", "--bpffs", n.pins).CombinedOutput()
	if err != nil {
		t.Fatalf("uninstall: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "removed link") || !strings.Contains(string(out), "let go held process") {
		t.Fatalf("uninstall does not say what it removed and let go:\n%s", out)
	}
	if _, err := os.Stat(n.pins); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s still there: %v", n.pins, err)
	}
	if m, err := ebpf.LoadPinnedMap(foreign, nil); err != nil {
		t.Fatalf("a pin that is not ringfence's went: %v", err)
	} else {
		m.Close()
	}
	// The kernel frees a released link, and then its program, from a
	// work queue: gone within moments, not at once.
	deadline = time.Now().Add(10 * time.Second)
	for {
		left := stillLoaded(t, links, progs)
		if left == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the uninstall: %s", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	gone := time.Now()
	deadline = time.Now().Add(30 * time.Second)
	for !n.succeededSince(c1, gone) {
		if time.Now().After(deadline) {
			t.Fatalf("no forbidden attempt of %s succeeded in 30 s after the uninstall", c1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(u3.Output(t), "entrypoint ran") {
		if time.Now().After(deadline) {
			t.Fatalf("the container held while no daemon ran was not let go: %q", u3.Output(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// succeededSince reports whether an attempt of id succeeded after t.
func (n *node) succeededSince(id string, t time.Time) bool {
	for _, a := range n.attempts(id) {
		if a.op == "bind" && a.res == "ok" && a.at.After(t) {
			return true
		}
	}
	return false
}

// versionOf returns the build version of a ringfence binary.
func versionOf(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		t.Fatalf("version: %q", out)
	}
	return f[1]
}

// foreignPin pins a map of no concern to ringfence in bpffs, removed when
// the test ends.
func foreignPin(t *testing.T) string {
	t.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p := fmt.Sprintf("%s/not-ringfence-%d", kernel.BPFFSPath, os.Getpid())
	if err := m.Pin(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(p) })
	return p
}

// stillLoaded says which of the links and programs the kernel still has,
// as their ids and as bpftool lists the programs; "" when none.
func stillLoaded(t *testing.T, links []link.ID, progs []ebpf.ProgramID) string {
	t.Helper()
	listed, err := exec.Command("bpftool", "prog", "show").Output()
	if err != nil {
		t.Fatalf("bpftool prog show: %v", err)
	}
	for _, id := range progs {
		if p, err := ebpf.NewProgramFromID(id); err == nil {
			p.Close()
			return fmt.Sprintf("program %d is still loaded", id)
		}
		if bytes.HasPrefix(listed, []byte(fmt.Sprintf("%d: ", id))) || bytes.Contains(listed, []byte(fmt.Sprintf("\n%d: ", id))) {
			return fmt.Sprintf("bpftool still lists program %d", id)
		}
	}
	for _, id := range links {
		if l, err := link.NewFromID(id); err == nil {
			l.Close()
			return fmt.Sprintf("link %d is still attached", id)
		}
	}
	return ""
}
