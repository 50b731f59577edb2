package api

import (
	"io"
	"os"
	"testing"
	"time"
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
