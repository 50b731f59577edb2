package api

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringfence/ringfence/test/testenv"
)

// openDir makes a directory that every user may enter.
func openDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "ringfence-api-test-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// TestNonRootClientRefused asks the API as uid 65534: the socket's mode
// refuses it, and where the modes were loosened, the server does.
func TestNonRootClientRefused(t *testing.T) {
	testenv.Privileged(t)
	// The client is this test binary, copied where uid 65534 may run it.
	bin := filepath.Join(openDir(t), "client")
	copyFile(t, os.Args[0], bin)
	cases := []struct {
		name   string
		loosen func(socket string) error
		want   string
	}{
		{"socket and directory as Listen makes them", func(string) error { return nil }, "permission denied"},
		{"directory opened, socket 0600", func(s string) error { return os.Chmod(filepath.Dir(s), 0o755) }, "connect: permission denied"},
		{"directory and socket opened", func(s string) error {
			return errors.Join(os.Chmod(filepath.Dir(s), 0o755), os.Chmod(s, 0o666))
		}, "the ringfence API answers root only, and this client runs as uid 65534"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			socket := filepath.Join(openDir(t), "run", "api.sock")
			ln, err := Listen(socket)
			if err != nil {
				t.Fatal(err)
			}
			if st, err := os.Stat(filepath.Dir(socket)); err != nil || st.Mode().Perm() != 0o700 {
				t.Fatalf("socket directory: %v %v, want mode 0700", st.Mode(), err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- NewServer(fakeBackend{}, NewHub(), "", nil).Serve(ctx, ln) }()
			defer func() { cancel(); <-done }()
			if err := c.loosen(socket); err != nil {
				t.Fatal(err)
			}
			// Root is answered.
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			defer rcancel()
			if s, err := NewClient(socket).Status(rctx); err != nil || s.Version != "test" {
				t.Fatalf("root client: %v %v", s, err)
			}
			cmd := exec.Command(bin)
			cmd.Env = append(os.Environ(), clientEnv+"="+socket)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("client as uid 65534: %v\n%s", err, out)
			}
			if !strings.HasPrefix(string(out), "uid 65534: ") || !strings.Contains(string(out), c.want) {
				t.Fatalf("client as uid 65534 says %q, want %q", out, c.want)
			}
		})
	}
}

func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	src, err := os.Open(from)
	if err != nil {
		tb.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		tb.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		tb.Fatal(err)
	}
}

// TestSlowFollowerReport: what a follower is told of the live events it
// missed is a loss report, so that every reader knows it for one.
func TestSlowFollowerReport(t *testing.T) {
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	e := slowFollowerReport(17, at)
	if !e.IsLossReport() || !e.Time.Equal(at) || e.Counts["follow_client_slow"] != 17 || len(e.Counts) != 1 {
		t.Fatalf("slow follower report %+v", e)
	}
}
