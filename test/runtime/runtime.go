// Package runtime gives tests a real, private containerd: Start brings one up
// with containerd.sh, with its own root, state and socket so that test
// packages running side by side do not meet, and removes it with everything
// it made when the test ends.
package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "embed"

	"github.com/ringfence/ringfence/test/testenv"
)

// Defaults of a Runtime.
const (
	// Image is the busybox image containerd.sh builds and imports.
	Image = "ringfence.test/busybox:latest"
	// Namespace is the containerd namespace ctr uses unless told otherwise.
	Namespace = "default"
)

// Where the private instances live; each gets its own entry below these.
const (
	rootParent = "/var/lib/ringfence-test"
	sockParent = "/run/ringfence-test"
)

// scriptTimeout bounds one containerd.sh call; a first start may install
// packages with apt.
const scriptTimeout = 3 * time.Minute

// script is containerd.sh itself, embedded so that a test binary run away
// from the source tree still carries it. Read only.
//
//go:embed containerd.sh
var script string

// Config chooses what Start sets up beyond the defaults.
type Config struct {
	// Namespaces the test image is imported into; Namespace when empty.
	Namespaces []string
}

// Runtime is a running private containerd.
type Runtime struct {
	// Socket is containerd's gRPC address.
	Socket string
	// Namespace is the namespace Run and RunDetached use: the first of
	// Config.Namespaces, "default" unless chosen.
	Namespace string
	// Image is the reference of the test image, present in every namespace
	// of Config.Namespaces.
	Image string
	// Root holds containerd's config, log, root and state.
	Root string

	script     string
	namespaces []string
}

// Start brings up a private containerd for tb and stops it, removing its
// containers and files, when tb ends. It needs root.
func Start(tb testing.TB) *Runtime {
	tb.Helper()
	return StartWith(tb, Config{})
}

// StartWith is Start with a Config.
func StartWith(tb testing.TB, cfg Config) *Runtime {
	tb.Helper()
	testenv.Privileged(tb)

	// A short random name: the socket path must stay under the 108 bytes a
	// unix socket address holds.
	name := fmt.Sprintf("%d-%s", os.Getpid(), randomHex(tb, 4))
	path := filepath.Join(tb.TempDir(), "containerd.sh")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		tb.Fatalf("writing containerd.sh: %v", err)
	}
	ns := cfg.Namespaces
	if len(ns) == 0 {
		ns = []string{Namespace}
	}
	r := &Runtime{
		Socket:     filepath.Join(sockParent, name+".sock"),
		Namespace:  ns[0],
		Image:      Image,
		Root:       filepath.Join(rootParent, name),
		script:     path,
		namespaces: ns,
	}
	// Registered before the start so that a half-done start is undone too;
	// after TempDir's cleanup in order, so it runs before the script goes.
	tb.Cleanup(func() {
		if out, err := r.runScript("stop"); err != nil {
			tb.Errorf("containerd.sh stop: %v\n%s", err, out)
		}
	})
	r.Up(tb)
	return r
}

// Up starts containerd again: after Down with a fresh root (the image is
// imported anew and no container survives), after KillDaemon on the root it
// left. It is a no-op while it runs.
func (r *Runtime) Up(tb testing.TB) {
	tb.Helper()
	out, err := r.runScript("start")
	if err == nil {
		return
	}
	if _, lerr := exec.LookPath("ctr"); lerr != nil {
		testenv.Unavailable(tb, fmt.Sprintf("containerd could not be installed: %v\n%s", err, out))
	}
	tb.Fatalf("containerd.sh start: %v\n%s", err, out)
}

// Down stops containerd as the end of the test would: its containers, shims
// and files go.
func (r *Runtime) Down(tb testing.TB) {
	tb.Helper()
	if out, err := r.runScript("stop"); err != nil {
		tb.Fatalf("containerd.sh stop: %v\n%s", err, out)
	}
}

// KillDaemon stops the containerd process alone, as a crash or an upgrade
// would: shims and containers keep running, and Up starts containerd again
// on the same root, where it finds them.
func (r *Runtime) KillDaemon(tb testing.TB) {
	tb.Helper()
	if out, err := r.runScript("kill-daemon"); err != nil {
		tb.Fatalf("containerd.sh kill-daemon: %v\n%s", err, out)
	}
}

// Running reports whether containerd runs and answers.
func (r *Runtime) Running() bool {
	_, err := r.runScript("status")
	return err == nil
}

func (r *Runtime) runScript(cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	c := exec.CommandContext(ctx, "/bin/bash", r.script, cmd)
	c.Env = append(os.Environ(),
		"RF_CONTAINERD_ROOT="+r.Root,
		"RF_CONTAINERD_SOCK="+r.Socket,
		"RF_CONTAINERD_NAMESPACES="+strings.Join(r.namespaces, " "),
	)
	out, err := c.CombinedOutput()
	return string(out), err
}

// Ctr runs ctr against this containerd in namespace ns and returns its
// standard output; the error carries the exit status and standard error.
func (r *Runtime) Ctr(ctx context.Context, ns string, args ...string) (string, error) {
	full := append([]string{"-a", r.Socket, "-n", ns}, args...)
	c := exec.CommandContext(ctx, "ctr", full...)
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// NewID returns a container id that is unique on the host: runc's state and
// the cgroups of every containerd share one directory per namespace.
func (r *Runtime) NewID(tb testing.TB, prefix string) string {
	tb.Helper()
	return prefix + "-" + randomHex(tb, 6)
}

func randomHex(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatalf("random id: %v", err)
	}
	return hex.EncodeToString(b)
}

// isNotFound reports whether a ctr error says the object does not exist.
func isNotFound(err error) bool {
	return err != nil && strings.Contains(err.Error(), "not found")
}
