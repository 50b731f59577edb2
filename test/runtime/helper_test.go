package runtime_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitFor polls cond until it holds, failing tb after ten seconds.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cgroup2 returns where the cgroup v2 filesystem is mounted.
func cgroup2(tb testing.TB) string {
	tb.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if f, g := strings.Fields(pre), strings.Fields(post); ok && len(f) >= 5 && len(g) > 0 && g[0] == "cgroup2" {
			return f[4]
		}
	}
	tb.Fatal("no cgroup2 mount in /proc/self/mountinfo")
	return ""
}

// shimsFor returns the command lines of the live shims serving socket.
func shimsFor(tb testing.TB, socket string) []string {
	tb.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		tb.Fatal(err)
	}
	var shims []string
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if strings.Contains(args[0], "containerd-shim") && strings.Contains(string(b), "\x00-address\x00"+socket+"\x00") {
			shims = append(shims, strings.Join(args, " "))
		}
	}
	return shims
}
