package netif

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringfence/ringfence/test/testenv"
)

// changeWithin is how soon onChange must report a change made by netlink.
const changeWithin = time.Second

// newTracker returns a Tracker recording into a new recorder, closed when
// the test ends.
func newTracker(tb testing.TB) (*Tracker, *recorder) {
	tb.Helper()
	r := newRecorder()
	t := New(r.onChange, slog.New(slog.NewTextHandler(testWriter{tb}, nil)))
	tb.Cleanup(t.Close)
	return t, r
}

// testWriter sends log lines to the test log.
type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestTrackErrors(t *testing.T) {
	tr, _ := newTracker(t)
	cases := []struct {
		name, path string
		ifnames    []string
		want       string
	}{
		{"no such file", "/nonexistent/ns/net", []string{"lo"}, "no such file"},
		{"not a namespace", "/proc/self/status", []string{"lo"}, "not a namespace file"},
		{"another namespace type", "/proc/self/ns/uts", []string{"lo"}, "not a network namespace"},
		{"empty name", "", []string{""}, "invalid interface name"},
		{"name with slash", "", []string{"a/b"}, "invalid interface name"},
	}
	fds := testenv.CountFDs()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := tr.Track("x", c.path, c.ifnames)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if testenv.CountFDs() != fds {
		t.Fatal("a failed Track leaked a descriptor")
	}
	if tr.watchCount() != 0 || len(tr.holders) != 0 {
		t.Fatal("a failed Track registered something")
	}
}

func (t *Tracker) mustSnapshot(tb testing.TB, key NSKey) Snapshot {
	tb.Helper()
	s, ok := t.Snapshot(key)
	if !ok {
		tb.Fatalf("namespace %d not watched", key)
	}
	return s
}

func (t *Tracker) watchCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.watches)
}

func interfaceNames(s Snapshot) []string {
	var names []string
	for _, f := range s.Interfaces {
		names = append(names, f.Name)
	}
	return names
}

// logBuffer collects log output from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
