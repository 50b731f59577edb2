package api

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringfence/ringfence/test/testenv"
)

// TestPrivilegedNonRootClientRefused asks the API as uid 65534: the socket's mode
// refuses it, and where the modes were loosened, the server does.
func TestPrivilegedNonRootClientRefused(t *testing.T) {
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
