package k8s

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ringfence/ringfence/deploy/image"
)

// testRollingUpdate rolls the DaemonSet to a second image while web binds
// a forbidden address every 5 ms, and requires that not one attempt
// succeeds, and that the new agent takes over within the loop: the old
// pod gone, the new one Ready and out of standby (the handover: the new
// agent starts beside the old one, which exempts it, waits in standby for
// the pins' lock, and adopts the pins when the old one exits; the pins
// enforce throughout). After it, web's allowed bind is served and its
// forbidden one refused by the new agent's set.
func testRollingUpdate(t *testing.T, e *env) {
	ctx := timeout(t, 4*time.Minute)
	tag := e.secondImage(ctx, t)
	const span = 75 * time.Second
	type result struct {
		c   loopCounts
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		c, err := e.runBindLoop(ctx, "web", "0.0.0.0:9092", span)
		done <- result{c, err}
	}()
	time.Sleep(2 * time.Second) // the loop is running
	before, err := e.agentPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Run(ctx, "-n", "ringfence", "set", "image", "ds/ringfence", "ringfence=ringfence:"+tag); err != nil {
		t.Fatal(err)
	}
	if err := e.c.WaitRollout(ctx, "ringfence", "ringfence", 2*time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, e.agentLogs(ctx))
	}
	in, err := e.waitInCharge(ctx)
	if err != nil {
		t.Fatalf("%v\n%s", err, e.agentLogs(ctx))
	}
	handover := time.Since(start)
	t.Logf("set image to the new agent in charge: %s (pods before: %+v, after: %+v)", (handover - 2*time.Second).Round(time.Millisecond), before, in)
	if !strings.HasSuffix(in.Image, ":"+tag) || slices.ContainsFunc(before, func(p agentPod) bool { return p.Name == in.Name }) {
		t.Errorf("the agent in charge is %+v, not a new pod of image %s", in, tag)
	}
	if handover > span-3*time.Second {
		t.Errorf("the handover took %s, the bind loop %s: it did not cover the handover", handover, span)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Logf("web's forbidden binds across the rolling update: %+v", r.c)
	if r.c.Attempts < 1000 || r.c.Succeeded != 0 {
		t.Errorf("during the rolling update: %+v; want every forbidden bind refused", r.c)
	}
	logs, err := e.c.Run(ctx, "-n", "ringfence", "logs", in.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"standby: another daemon holds the pins", "taking over"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the new agent's log does not say %q: it did not wait in standby and take over\n%s", want, lastLine(logs, "level="))
		}
	}
	t.Logf("the new agent: %s", lastLine(logs, "taking over"))
	// The same build: the pins adopted, nothing detached.
	if st, err := e.agent(ctx, "status"); err != nil || !strings.Contains(st, "adopted") {
		t.Errorf("the new agent's status does not show the pins adopted: %v\n%s", err, st)
	}
	e.wantAllowedServed(ctx, t, "web")
	if c := e.bindLoop(ctx, t, "web", "0.0.0.0:9092"); c.Attempts < 100 || c.Succeeded != 0 {
		t.Errorf("after the rolling update: %+v; want every forbidden bind refused", c)
	}
}

// secondImage imports the test's image again under another tag, with a
// changed label so that its digest differs, and returns the tag.
func (e *env) secondImage(ctx context.Context, t *testing.T) string {
	t.Helper()
	img, err := tarball.ImageFromPath(e.imageArchive, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	c.Labels = map[string]string{"org.opencontainers.image.version": e.version + "-next"}
	if img, err = mutate.Config(img, c); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "next.tar")
	if _, err := image.WriteArchive(img, "ringfence:"+e.version+"-next", out); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Import(ctx, out); err != nil {
		t.Fatal(err)
	}
	return e.version + "-next"
}

// testAgentPodDeleted deletes the agent's pod, as an operator restarting
// it would, while web binds a forbidden address every 5 ms: the
// DaemonSet's next pod is made at once, the stopping agent exempts it
// before it goes (a pod made once no daemon runs would be held by the
// pinned programs, the next agent with it, and nothing would let it go),
// the next agent takes charge, and no attempt succeeds meanwhile.
func testAgentPodDeleted(t *testing.T, e *env) {
	ctx := timeout(t, 4*time.Minute)
	old, err := e.waitInCharge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const span = 60 * time.Second
	type result struct {
		c   loopCounts
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := e.runBindLoop(ctx, "web", "0.0.0.0:9092", span)
		done <- result{c, err}
	}()
	time.Sleep(2 * time.Second) // the loop is running
	start := time.Now()
	if _, err := e.c.Run(ctx, "-n", "ringfence", "delete", "pod", old.Name, "--wait=false"); err != nil {
		t.Fatal(err)
	}
	var in agentPod
	err = poll(ctx, "the next agent in charge", func() (string, bool) {
		p, err := e.waitInChargeOnce(ctx)
		if err != nil {
			return err.Error() + "; held ringfence processes: " + strings.Join(heldAgents(), ", "), false
		}
		in = p
		return "", p.Name != old.Name
	})
	if err != nil {
		t.Fatalf("after the agent's pod was deleted: %v\n%s", err, e.agentLogs(ctx))
	}
	t.Logf("pod %s deleted, %s in charge after %s", old.Name, in.Name, time.Since(start).Round(time.Millisecond))
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Logf("web's forbidden binds across the pod's replacement: %+v", r.c)
	if r.c.Attempts < 1000 || r.c.Succeeded != 0 {
		t.Errorf("during the pod's replacement: %+v; want every forbidden bind refused", r.c)
	}
	if held := heldAgents(); len(held) > 0 {
		t.Errorf("agent processes stopped by the pinned programs: %v", held)
	}
}

// heldAgents lists the agent processes on the host that are stopped (the
// pinned programs hold a new container's first exec so).
func heldAgents() []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmd, err := os.ReadFile(p)
		if err != nil || !strings.HasPrefix(string(cmd), "/usr/bin/ringfence\x00run\x00") {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
		// pid (comm) STATE ...
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'T' {
			out = append(out, filepath.Base(filepath.Dir(p)))
		}
	}
	return out
}
