package sensor

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/test/testenv"
)

const execPolicies = `
apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: provenance}
spec:
  mode: enforce
  selector: {names: ["reg-*"]}
  allowedRegistries: [registry.internal]
---
apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: no-privileged}
spec:
  mode: audit
  selector: {names: ["priv-*"]}
  denyPrivileged: true
`

// TestPrivilegedExecRules: a container whose image is from another registry runs
// nothing under an enforcing policy; a privileged one under an auditing
// policy runs, reported; and a policy reloaded while a container runs
// applies to its next exec.
func TestPrivilegedExecRules(t *testing.T) {
	testenv.Privileged(t)
	h, policyFile := newContainerHarness(t, execPolicies)

	t.Run("registry-enforce", func(t *testing.T) {
		id := h.rt.NewID(t, "reg")
		// The entrypoint would print; it must never run.
		out, err := h.rt.With().Try(context.Background(), id, "echo", "ran")
		if strings.Contains(out, "ran") {
			t.Fatalf("a container from a forbidden registry ran its entrypoint: %q (%v)", out, err)
		}
		e := h.rec.waitFor(t, "registry violation", func(e *event.Event) bool {
			return e.Kind == event.KindViolation && e.Container != nil && e.Container.ID == id && e.Rule == "allowedRegistries" &&
				e.Verdict == event.VerdictDeny && e.Policy == "provenance" && e.Mode == "enforce"
		})
		if e.Binary == "" {
			t.Errorf("the violation names no executable: %+v", e)
		}
	})

	t.Run("privileged-audit", func(t *testing.T) {
		id := h.rt.NewID(t, "priv")
		if out := h.rt.With("--privileged").Run(t, id, "echo", "ran"); !strings.Contains(out, "ran") {
			t.Fatalf("audit mode stopped a privileged container: %q", out)
		}
		h.rec.waitFor(t, "privileged violation", func(e *event.Event) bool {
			return e.Kind == event.KindViolation && e.Container != nil && e.Container.ID == id && e.Rule == "denyPrivileged" &&
				e.Verdict == event.VerdictAudit && e.Policy == "no-privileged"
		})
		// Not privileged: not reported.
		id2 := h.rt.NewID(t, "priv")
		h.rt.Run(t, id2, "true")
		// Its exit is the marker: the hold stage hands on a held exec and
		// its violation before it lets the process run.
		h.rec.waitFor(t, "exit of "+id2, func(e *event.Event) bool {
			return e.Kind == event.KindExit && e.Container != nil && e.Container.ID == id2
		})
		if v := h.violationsOf(id2); len(v) > 0 {
			t.Fatalf("an unprivileged container reported:%s", describe(v))
		}
	})

	t.Run("reload", func(t *testing.T) {
		// A running container under no policy ...
		id := h.rt.NewID(t, "late")
		c := h.rt.RunDetached(t, id, "sleep", "60")
		c.Pid(t)
		if out, err := h.rt.Ctr(context.Background(), h.rt.Namespace, "tasks", "exec", "--exec-id", "e1", id, "echo", "before"); err != nil || !strings.Contains(out, "before") {
			t.Fatalf("exec before the reload: %q %v", out, err)
		}
		gen := h.s.PolicyStatus().Generation

		// ... comes under one when the file changes.
		changed := strings.ReplaceAll(execPolicies, `names: ["reg-*"]`, `names: ["reg-*", "late-*"]`)
		if err := os.WriteFile(policyFile, []byte(changed), 0o644); err != nil {
			t.Fatal(err)
		}
		waitGeneration(t, h.s, gen+1)
		out, _ := h.rt.Ctr(context.Background(), h.rt.Namespace, "tasks", "exec", "--exec-id", "e2", id, "echo", "after")
		if strings.Contains(out, "after") {
			t.Fatalf("exec after the reload ran: %q", out)
		}
		h.rec.waitFor(t, "violation after reload", func(e *event.Event) bool {
			return e.Kind == event.KindViolation && e.Container != nil && e.Container.ID == id && e.Rule == "allowedRegistries" && e.Verdict == event.VerdictDeny
		})

		// A broken file is refused, with its problems in status, and the
		// set in force stays: the container still may not exec.
		if err := os.WriteFile(policyFile, []byte(changed+"\n---\napiVersion: ringfence.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: x}\nspec: {mode: sometimes}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(h.s.PolicyStatus().Rejected) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("a broken policy file was not refused")
			}
			time.Sleep(20 * time.Millisecond)
		}
		st := h.s.PolicyStatus()
		if st.Generation != gen+1 || !strings.Contains(strings.Join(st.Rejected, "\n"), "spec.mode") {
			t.Fatalf("status after a broken file: %+v", st)
		}
		out, _ = h.rt.Ctr(context.Background(), h.rt.Namespace, "tasks", "exec", "--exec-id", "e3", id, "echo", "still")
		if strings.Contains(out, "still") {
			t.Fatalf("the refused set lifted the policy in force: exec ran: %q", out)
		}

		// SIGHUP's path: reloading the original file frees the container.
		if err := os.WriteFile(policyFile, []byte(execPolicies), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := h.s.ReloadPolicies(); err != nil {
			t.Fatal(err)
		}
		if g := h.s.PolicyStatus().Generation; g != gen+2 {
			t.Fatalf("generation %d after reload, want %d", g, gen+2)
		}
		if out, err := h.rt.Ctr(context.Background(), h.rt.Namespace, "tasks", "exec", "--exec-id", "e4", id, "echo", "free"); err != nil || !strings.Contains(out, "free") {
			t.Fatalf("exec once no policy selects the container: %q %v", out, err)
		}
	})
}

func waitGeneration(t *testing.T, s *Sensor, gen uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.PolicyStatus().Generation < gen {
		if time.Now().After(deadline) {
			t.Fatalf("policy generation %d never reached %d: %+v", s.PolicyStatus().Generation, gen, s.PolicyStatus())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
