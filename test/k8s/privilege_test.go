package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/test/k8s/cluster"
)

// testLeastPrivilege removes each capability the DaemonSet adds, in turn,
// and requires the agent to show the loss: it never becomes ready, or it
// runs with a rule degraded (web's allowed bind refused: the bind rule
// fails closed), the log saying why. The test says which for each. An
// agent that never becomes ready must never replace the one in charge: its
// pod is not counted ready on the other agent's word (the probes ask each
// process on its own socket). Then the DaemonSet as shipped is back (also
// when a step fails), and web's allowed bind is served again.
func testLeastPrivilege(t *testing.T, e *env) {
	ctx := timeout(t, 8*time.Minute)
	caps := e.addedCapabilities(ctx, t)
	if len(caps) == 0 {
		t.Fatal("the DaemonSet adds no capability: nothing to prove")
	}
	restored := false
	t.Cleanup(func() {
		if restored {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if _, err := e.c.Run(ctx, "apply", "-k", e.overlay); err != nil {
			t.Errorf("restoring the DaemonSet: %v", err)
		} else if err := e.c.WaitRollout(ctx, "ringfence", "ringfence", 2*time.Minute); err != nil {
			t.Errorf("restoring the DaemonSet: %v\n%s", err, e.agentLogs(ctx))
		}
	})
	for _, c := range caps {
		t.Run(c, func(t *testing.T) {
			rest := slices.DeleteFunc(slices.Clone(caps), func(x string) bool { return x == c })
			before, err := e.agentPods(ctx)
			if err != nil {
				t.Fatal(err)
			}
			e.setCapabilities(ctx, t, rest)
			err = e.c.WaitRollout(ctx, "ringfence", "ringfence", 45*time.Second)
			logs := e.agentLogs(ctx)
			if err != nil {
				if !strings.Contains(logs, "operation not permitted") {
					t.Errorf("without %s the agent is not ready, but its log does not say why:\n%s", c, logs)
				}
				// The agent in charge stays: nothing counted the new pod
				// ready, so the DaemonSet did not delete the old one.
				now, err := e.agentPods(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range before {
					if !p.Ready || p.Deleting {
						continue // not the agent in charge (an earlier step's pod)
					}
					if i := slices.IndexFunc(now, func(q agentPod) bool { return q.Name == p.Name }); i < 0 || now[i].Deleting || !now[i].Ready {
						t.Errorf("without %s the agent in charge (%s) was replaced by one that never became ready: pods before %+v, now %+v", c, p.Name, before, now)
					}
				}
				t.Logf("without %s: the agent never becomes ready: %s", c, lastLine(logs, "ringfence run:"))
				return
			}
			// Ready may be the new agent in standby, the old one still
			// enforcing: what is judged is the new one in charge.
			if _, err := e.waitInCharge(ctx); err != nil {
				t.Fatalf("without %s: %v\n%s", c, err, e.agentLogs(ctx))
			}
			logs = e.agentLogs(ctx)
			out, _ := e.allowedBind(ctx, "web")
			if strings.Contains(out, "web") {
				t.Errorf("without %s the agent is ready and web's allowed bind is served: the capability is not needed", c)
				return
			}
			if !strings.Contains(logs, "permission denied") {
				t.Errorf("without %s web's allowed bind is refused, but the agent's log does not say why:\n%s", c, logs)
			}
			t.Logf("without %s: ready, bindInterfaces degraded (fails closed: web's allowed bind refused): %s", c, lastLine(logs, "permission denied"))
		})
	}
	if _, err := e.c.Run(ctx, "apply", "-k", e.overlay); err != nil {
		t.Fatal(err)
	}
	if err := e.c.WaitRollout(ctx, "ringfence", "ringfence", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	restored = true
	if _, err := e.waitInCharge(ctx); err != nil {
		t.Fatal(err)
	}
	e.wantAllowedServed(ctx, t, "web")
}

// addedCapabilities are the capabilities the deployed DaemonSet adds.
func (e *env) addedCapabilities(ctx context.Context, t *testing.T) []string {
	t.Helper()
	out, err := e.c.Run(ctx, "-n", "ringfence", "get", "ds", "ringfence", "-o", "jsonpath={.spec.template.spec.containers[0].securityContext.capabilities.add}")
	if err != nil {
		t.Fatal(err)
	}
	var caps []string
	if err := json.Unmarshal([]byte(out), &caps); err != nil {
		t.Fatalf("capabilities %q: %v", out, err)
	}
	return caps
}

func (e *env) setCapabilities(ctx context.Context, t *testing.T, caps []string) {
	t.Helper()
	patch, _ := json.Marshal([]map[string]any{{"op": "replace", "path": "/spec/template/spec/containers/0/securityContext/capabilities/add", "value": caps}})
	if _, err := e.c.Run(ctx, "-n", "ringfence", "patch", "ds", "ringfence", "--type", "json", "-p", string(patch)); err != nil {
		t.Fatal(err)
	}
}

// lastLine is the last line of s containing sub, shortened.
func lastLine(s, sub string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			return lines[i][:min(len(lines[i]), 300)]
		}
	}
	return ""
}

// metric reads one sample of the agent's metrics, on the node's address.
func (e *env) metric(ctx context.Context, t *testing.T, name string) float64 {
	t.Helper()
	for _, l := range strings.Split(get(ctx, t, "http://"+cluster.NodeIP+":9464/metrics"), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in the metrics", name)
	return 0
}

// testUninstall deletes what was applied, as the README says, and requires
// that no ringfence program, link or pin is left on the node, and that
// web's forbidden bind goes through again.
func testUninstall(t *testing.T, e *env) {
	ctx := timeout(t, 3*time.Minute)
	e.logAgentMemory(t)
	if len(ringfenceObjects(t)) == 0 {
		t.Fatal("before uninstall no ringfence program is loaded: the check would prove nothing")
	}
	if _, err := e.c.Run(ctx, "delete", "--ignore-not-found", "-k", filepath.Join(e.root, "deploy/kubernetes/policies")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Run(ctx, "delete", "--ignore-not-found", "--wait", "-k", e.overlay); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Run(ctx, "wait", "--for", "delete", "namespace/ringfence", "--timeout", "90s"); err != nil && !strings.Contains(err.Error(), "NotFound") {
		t.Fatal(err)
	}
	if left := ringfenceObjects(t); len(left) > 0 {
		t.Errorf("after uninstall, ringfence BPF objects are left: %v", left)
	}
	if pins := ringfencePins(); len(pins) > 0 {
		t.Errorf("after uninstall, pins are left: %v", pins)
	}
	if c := e.bindLoop(ctx, t, "web", "0.0.0.0:9092"); c.Succeeded != c.Attempts {
		t.Errorf("after uninstall web's binds are still refused: %+v", c)
	}
}

// ringfenceObjects lists what is left of ringfence in the kernel: its
// programs (named rf_*) as bpftool shows them, and the links of those
// programs. A link holds its program, so a link left would keep its
// program listed too; both are shown for the failure message.
func ringfenceObjects(t *testing.T) []string {
	t.Helper()
	progs := map[float64]bool{}
	var left []string
	for _, p := range bpftoolShow(t, "prog") {
		if name, _ := p["name"].(string); strings.HasPrefix(name, "rf_") {
			progs[p["id"].(float64)] = true
			left = append(left, fmt.Sprintf("prog %v", p))
		}
	}
	for _, l := range bpftoolShow(t, "link") {
		if id, _ := l["prog_id"].(float64); progs[id] {
			left = append(left, fmt.Sprintf("link %v", l))
		}
	}
	return left
}

// bpftoolShow is `bpftool -j WHAT show`, decoded.
func bpftoolShow(t *testing.T, what string) []map[string]any {
	t.Helper()
	out, err := runCmd("bpftool", "-j", what, "show")
	if err != nil {
		t.Fatalf("bpftool %s show: %v: %s", what, err, out)
	}
	var objs []map[string]any
	if err := json.Unmarshal([]byte(out), &objs); err != nil {
		t.Fatalf("bpftool %s show: %v", what, err)
	}
	return objs
}

// ringfencePins lists what bpffs holds under a ringfence name.
func ringfencePins() []string {
	var out []string
	filepath.WalkDir("/sys/fs/bpf", func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(strings.ToLower(d.Name()), "ringfence") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// logAgentMemory logs the agent's resident memory (current and peak), from
// its /proc entry on the host.
func (e *env) logAgentMemory(t *testing.T) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmd, err := os.ReadFile(p)
		if err != nil || !strings.HasPrefix(string(cmd), "/usr/bin/ringfence\x00run\x00--kubernetes") {
			continue
		}
		status, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "status"))
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "VmRSS") || strings.HasPrefix(l, "VmHWM") {
				t.Logf("agent %s", strings.Join(strings.Fields(l), " "))
			}
		}
	}
}
