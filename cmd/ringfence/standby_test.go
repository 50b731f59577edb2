package main

import (
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestStandbyHandler: a daemon in standby is alive, not ready while no
// pinned set is in force (here: a directory that holds none), and says
// it is in standby.
func TestStandbyHandler(t *testing.T) {
	h := standbyHandler(t.TempDir(), "standby")
	get := func(path string) (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w.Code, w.Body.String()
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, "standby") {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "standby") {
		t.Errorf("/readyz without a pinned set: %d %q, want 503", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "\nringfence_standby 1\n") {
		t.Errorf("/metrics: %d %q", code, body)
	}
}

// TestListenShared: the daemon in charge and one in standby both listen
// on the metrics address; a listener without SO_REUSEPORT is refused.
func TestListenShared(t *testing.T) {
	ctx := context.Background()
	a, err := listenShared(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := listenShared(ctx, a.Addr().String())
	if err != nil {
		t.Fatalf("second listener on %s: %v", a.Addr(), err)
	}
	defer b.Close()
	if c, err := net.Listen("tcp", a.Addr().String()); err == nil {
		c.Close()
		t.Error("a plain listener shares the address too: SO_REUSEPORT was not set")
	}
}
