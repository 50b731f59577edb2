package k8s

import (
	"context"
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
