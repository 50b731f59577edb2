package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestHealthSocket: the socket answers for the stage the daemon is in
// (starting, standby, running), `ringfence health` exits 0 only on an ok
// answer, and nothing answering is an error naming the socket.
func TestHealthSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "health.sock")
	ask := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := healthCmd(append([]string{"--socket", sock}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, _, errs := ask(); code != 1 || !strings.Contains(errs, sock) {
		t.Errorf("nothing listening: exit %d, %q; want 1 and the socket named", code, errs)
	}
	// A socket left by an earlier process of the pod (killed: the file
	// stays, nothing answers) is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("the stale socket file: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sw := newHealthSwitch()
	if err := serveHealth(ctx, sock, sw); err != nil {
		t.Fatalf("a stale socket was not replaced: %v", err)
	}
	// One another process answers on is not taken from it.
	if err := serveHealth(ctx, sock, newHealthSwitch()); err == nil || !strings.Contains(err.Error(), "another process answers") {
		t.Errorf("a live socket: %v, want refused", err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v %v, want 0600", fi, err)
	}
	if code, out, _ := ask("healthz"); code != 0 || !strings.Contains(out, "starting") {
		t.Errorf("starting, healthz: exit %d %q", code, out)
	}
	if code, _, errs := ask("readyz"); code != 1 || !strings.Contains(errs, "not ready: starting") {
		t.Errorf("starting, readyz: exit %d %q; want 1, not ready", code, errs)
	}
	var ready atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	sw.set(mux)
	if code, _, _ := ask(); code != 1 {
		t.Errorf("not ready: exit %d, want 1", code)
	}
	ready.Store(true)
	if code, out, _ := ask(); code != 0 || out != "ok\n" {
		t.Errorf("ready: exit %d %q, want 0 and ok", code, out)
	}
}

func TestHealthRefusesBadArguments(t *testing.T) {
	for _, args := range [][]string{{}, {"--socket", "/x", "livez"}, {"--socket", "/x", "readyz", "more"}} {
		var out, errb bytes.Buffer
		if code := healthCmd(args, &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("%q: exit %d %q, want 2 and why", args, code, errb.String())
		}
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if err := serveHealth(context.Background(), file, newHealthSwitch()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("a regular file at the path: %v, want refused", err)
	}
}
