package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testNamespace holds the workloads of testdata/cluster/workloads.yaml.
const testNamespace = "rf-test"

// TestHostCluster runs ringfence as an SRE deploys it on a real single-node
// cluster, each step a subtest in the order an operator meets them; the
// cluster and the deployment are shared, uninstall comes last.
func TestHostCluster(t *testing.T) {
	e := deployed(t)
	steps := []struct {
		name string
		run  func(*testing.T, *env)
	}{
		{"SchemaAgreesWithParser", testSchemaAgreesWithParser},
		{"PolicyByNamespaceAndPodLabel", testPolicyByNamespaceAndPodLabel},
		{"InvalidObjectRefusedByAPIServer", testInvalidObject},
		{"ObjectRefusedByAgentKeepsSet", testObjectRefusedByAgent},
		{"MetricsScrape", testMetricsScrape},
		{"LeastPrivilege", testLeastPrivilege},
		{"RollingUpdate", testRollingUpdate},
		{"AgentPodDeleted", testAgentPodDeleted},
		{"Uninstall", testUninstall},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { s.run(t, e) }) && s.name == "PolicyByNamespaceAndPodLabel" {
			t.Fatal("the later steps build on the policy step")
		}
	}
}

func timeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func (e *env) testdata(name string) string {
	return filepath.Join(e.root, "test/k8s/testdata/cluster", name)
}

// testPolicyByNamespaceAndPodLabel applies web-bind with kubectl: web's
// forbidden binds are refused, every one of a burst, its allowed bind is
// served, the violation is in `ringfence events --pod web`, and other, in
// the same namespace, is untouched.
func testPolicyByNamespaceAndPodLabel(t *testing.T, e *env) {
	ctx := timeout(t, 3*time.Minute)
	if _, err := e.c.Run(ctx, "apply", "-f", e.testdata("workloads.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Run(ctx, "-n", testNamespace, "wait", "--for", "condition=Ready", "pod/web", "pod/other", "--timeout", "90s"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Run(ctx, "apply", "-f", e.testdata("web-bind.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := e.waitStatus(ctx, "web-bind (enforce)"); err != nil {
		t.Fatal(err)
	}
	e.wantForbiddenRefused(ctx, t, "web")
	e.wantAllowedServed(ctx, t, "web")
	if c := e.bindLoop(ctx, t, "web", "0.0.0.0:9092"); c.Attempts < 100 || c.Succeeded != 0 || c.Refused != c.Attempts {
		t.Errorf("web, binding 0.0.0.0:9092 every 5 ms for 3 s: %+v; want at least 100 attempts, every one refused", c)
	}
	if c := e.bindLoop(ctx, t, "other", "0.0.0.0:9092"); c.Attempts < 100 || c.Succeeded != c.Attempts {
		t.Errorf("other (not selected): %+v; want every bind to succeed", c)
	}
	if out, err := e.exec(ctx, "other", "nc -l -p 9090 -w 1 2>&1"); strings.Contains(out, "not permitted") {
		t.Errorf("other's bind refused: %s %v", out, err)
	}
	v := e.violations(ctx, t, "web")
	if !hasViolation(v, "web-bind", 9090) {
		t.Errorf("no web-bind violation for port 9090 in `ringfence events --pod web --kind violation`: %+v", v)
	}
	for _, ev := range e.violations(ctx, t, "other") {
		if ev.Policy == "web-bind" {
			t.Errorf("a web-bind violation for other: %+v", ev)
		}
	}
}

// wantForbiddenRefused binds the wildcard address in pod: refused.
func (e *env) wantForbiddenRefused(ctx context.Context, t *testing.T, pod string) {
	t.Helper()
	out, _ := e.exec(ctx, pod, "nc -l -p 9090 -w 1 2>&1")
	if !strings.Contains(out, "Operation not permitted") {
		t.Errorf("%s: bind to [::]:9090 not refused: %q", pod, out)
	}
}

// allowedBind serves a file on eth0's address (the pod's IP), port 8080
// (what web-bind allows), and fetches it.
func (e *env) allowedBind(ctx context.Context, pod string) (string, error) {
	script := `httpd -f -p "$POD_IP:8080" -h /etc & sleep 0.5
timeout 3 wget -q -O- "http://$POD_IP:8080/hostname" 2>&1; kill $! 2>/dev/null; wait`
	return e.exec(ctx, pod, script)
}

func (e *env) wantAllowedServed(ctx context.Context, t *testing.T, pod string) {
	t.Helper()
	if out, err := e.allowedBind(ctx, pod); !strings.Contains(out, pod) {
		t.Errorf("%s: the allowed bind (eth0's address, port 8080) was not served: %q %v", pod, out, err)
	}
}

// loopCounts is bindloop's result line.
type loopCounts struct {
	Attempts, Succeeded, Refused, Other int
}

// bindLoop binds addr in pod every 5 ms for 3 s (the workload image's
// bindloop) and returns how the attempts ended.
func (e *env) bindLoop(ctx context.Context, t *testing.T, pod, addr string) loopCounts {
	t.Helper()
	c, err := e.runBindLoop(ctx, pod, addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runBindLoop is bindLoop for span; safe to call from any goroutine.
func (e *env) runBindLoop(ctx context.Context, pod, addr string, span time.Duration) (loopCounts, error) {
	out, err := e.exec(ctx, pod, "bindloop -addr "+addr+" -every 5ms -for "+span.String())
	var c loopCounts
	if err != nil || json.Unmarshal([]byte(strings.TrimSpace(out)), &c) != nil {
		return c, fmt.Errorf("bindloop in %s: %v: %q", pod, err, out)
	}
	return c, nil
}

// violation is what the test reads of a violation event.
type violation struct {
	Policy    string `json:"policy"`
	Rule      string `json:"rule"`
	Port      int    `json:"port"`
	Container struct {
		Pod       string `json:"pod"`
		Namespace string `json:"namespace"`
	} `json:"container"`
}

// violations are pod's violations, as `ringfence events` in the agent's pod
// gives them.
func (e *env) violations(ctx context.Context, t *testing.T, pod string) []violation {
	t.Helper()
	out, err := e.agent(ctx, "events", "--pod", pod, "--namespace", testNamespace, "--kind", "violation", "-o", "json")
	if err != nil {
		t.Fatalf("ringfence events: %v", err)
	}
	var vs []violation
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var v violation
		if l != "" && json.Unmarshal([]byte(l), &v) == nil {
			vs = append(vs, v)
		}
	}
	return vs
}

func hasViolation(vs []violation, policy string, port int) bool {
	for _, v := range vs {
		if v.Policy == policy && v.Rule == "bindInterfaces" && v.Port == port && v.Container.Pod == "web" && v.Container.Namespace == testNamespace {
			return true
		}
	}
	return false
}

// testInvalidObject: the API server refuses a bad policy and names the field.
func testInvalidObject(t *testing.T, e *env) {
	ctx := timeout(t, time.Minute)
	out, err := e.c.Run(ctx, "apply", "-f", e.testdata("invalid-ports.yaml"))
	if err == nil || !strings.Contains(out, "spec.bindInterfaces.ports[0]") {
		t.Errorf("want a refusal naming spec.bindInterfaces.ports[0], got %v: %s", err, out)
	}
	if out, err := e.c.Run(ctx, "get", "runtimepolicy", "invalid-ports"); err == nil || !strings.Contains(out, "NotFound") {
		t.Errorf("the refused object exists: %s %v", out, err)
	}
}

// testObjectRefusedByAgent applies seven valid objects that, with the two
// in force, select web nine times (the kernel holds eight): the agent
// refuses the set, keeps the one in force (web's forbidden bind still
// refused), says so in status and in its metric, and raises an Event on
// the object; removing them brings the set back to a clean state.
func testObjectRefusedByAgent(t *testing.T, e *env) {
	ctx := timeout(t, 2*time.Minute)
	if _, err := e.c.Run(ctx, "apply", "-f", e.testdata("nine-policies.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := e.waitStatus(ctx, "selected by 9 policies, at most 8"); err != nil {
		t.Fatal(err)
	}
	events, err := e.waitEvent(ctx, "PolicyRefused")
	if err != nil {
		t.Fatal(err)
	}
	// kubectl creates the objects one by one, and the agent applies each
	// change: the first six fit, and the object (or objects) whose
	// arrival made nine is refused. Each refused one is named in an Event
	// and is not in force; the set in force before it stays.
	status, _ := e.agent(ctx, "status")
	for _, ev := range strings.Split(strings.TrimSpace(events), "\n") {
		name, msg, _ := strings.Cut(strings.TrimPrefix(ev, "RuntimePolicy/"), ": ")
		if !strings.HasPrefix(name, "extra-") || !strings.Contains(msg, "the policy set in force stays") {
			t.Errorf("event %q", ev)
		}
		if strings.Contains(status, name+" (audit)") {
			t.Errorf("%s was refused, yet it is in force:\n%s", name, status)
		}
	}
	if !strings.Contains(status, "web-bind (enforce)") {
		t.Errorf("the set in force lost web-bind:\n%s", status)
	}
	e.wantForbiddenRefused(ctx, t, "web")
	if m := e.metric(ctx, t, "ringfence_policy_objects_refused_total"); m < 1 {
		t.Errorf("ringfence_policy_objects_refused_total = %v, want at least 1", m)
	}
	if _, err := e.c.Run(ctx, "delete", "-f", e.testdata("nine-policies.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := e.waitStatusWithout(ctx, "refused:"); err != nil {
		t.Error(err)
	}
}

// waitEvent waits for an Event with this reason on a RuntimePolicy and
// returns "KIND/NAME: MESSAGE" lines.
func (e *env) waitEvent(ctx context.Context, reason string) (string, error) {
	var events string
	err := poll(ctx, reason+" Event on a RuntimePolicy", func() (string, bool) {
		out, err := e.c.Run(ctx, "get", "events", "-n", "default", "--field-selector", "reason="+reason,
			"-o", `jsonpath={range .items[*]}{.involvedObject.kind}/{.involvedObject.name}: {.message}{"\n"}{end}`)
		events = out
		return out, err == nil && strings.Contains(out, "RuntimePolicy/")
	})
	return events, err
}
