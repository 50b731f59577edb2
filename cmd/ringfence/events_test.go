package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/api"
	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/posture"
	"github.com/ringfence/ringfence/sensor/status"
	"github.com/ringfence/ringfence/sensor/store"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// stored writes a small store: containers web (pod web-1, image
// registry.internal/web:1, namespace prod) and db (pod db-0,
// docker.io/library/postgres:16, namespace data), one event a second, every
// fourth a deny, and a loss report at 10:00:30.
func stored(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	w, err := store.OpenWriter(dir, store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	ctrs := []event.Container{
		{ID: "aaaa1111", Name: "web", Image: "registry.internal/web:1", Pod: "web-1", PodNamespace: "prod"},
		{ID: "bbbb2222", Name: "db", Image: "docker.io/library/postgres:16", Pod: "db-0", PodNamespace: "data"},
	}
	var evs []event.Event
	for i := 0; i < 60; i++ {
		e := event.Event{Time: t0.Add(time.Duration(i) * time.Second), Kind: event.KindFile, Verdict: event.VerdictAllow, PID: uint32(i), Path: fmt.Sprintf("/f/%d", i), Op: "open"}
		e.Container = &ctrs[i%2]
		if i%4 == 3 {
			e.Verdict = event.VerdictDeny
		}
		evs = append(evs, e)
	}
	evs = append(evs, event.Event{Time: t0.Add(30*time.Second + 500*time.Millisecond), Kind: event.KindSensor, Verdict: event.VerdictAllow,
		Message: event.LossMessage, Counts: map[string]uint64{"ring_full_file": 4, "store_write_error": 1}})
	if err := w.Append(evs); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// pidsOf reads JSON lines and returns their pids.
func pidsOf(tb testing.TB, out string) []uint32 {
	tb.Helper()
	var pids []uint32
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var e event.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			tb.Fatalf("not a JSON line: %q", line)
		}
		pids = append(pids, e.PID)
	}
	return pids
}

func TestEventsFilters(t *testing.T) {
	dir := stored(t)
	now := t0.Add(time.Hour)
	cases := []struct {
		name     string
		args     []string
		want     string // the pids printed
		warnLoss bool   // the window saw losses
	}{
		{"pod", []string{"--pod", "db-0", "--limit", "3"}, "[1 3 5]", true},
		{"namespace", []string{"--namespace", "prod", "--since", "2026-11-28T10:00:50Z"}, "[50 52 54 56 58]", false},
		{"image glob", []string{"--image", "docker.io/library/*", "--until", "2026-11-28T10:00:06Z"}, "[1 3 5]", false},
		{"image exact", []string{"--image", "registry.internal/web:1", "--until", "2026-11-28T10:00:05Z"}, "[0 2 4]", false},
		{"container name", []string{"--container", "web", "--since", "2026-11-28T10:00:53Z"}, "[54 56 58]", false},
		{"container id prefix", []string{"--container", "bbbb", "--since", "2026-11-28T10:00:54Z"}, "[55 57 59]", false},
		{"verdict deny", []string{"--verdict", "deny", "--until", "2026-11-28T10:00:20Z"}, "[3 7 11 15 19]", false},
		{"verdict and container", []string{"--verdict", "deny", "--container", "db", "--until", "2026-11-28T10:00:20Z"}, "[3 7 11 15 19]", false},
		{"verdict of the other container", []string{"--verdict", "deny", "--container", "web"}, "[]", true},
		{"RFC 3339 window with an offset", []string{"--since", "2026-11-28T12:00:28+02:00", "--until", "2026-11-28T10:00:32.5Z", "--kind", "file"}, "[28 29 30 31 32]", true},
		{"window with losses, one container", []string{"--container", "web", "--since", "2026-11-28T10:00:29Z", "--until", "2026-11-28T10:00:33Z"}, "[30 32]", true},
		{"window after the losses", []string{"--since", "2026-11-28T10:00:31Z", "--until", "2026-11-28T10:00:33Z"}, "[31 32]", false},
		{"duration before now", []string{"--since", "59m05s", "--container", "db"}, "[55 57 59]", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := parseEventsFlags(append([]string{"--store", dir, "-o", "json"}, c.args...), io.Discard, now)
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if err := runEvents(context.Background(), f, &stdout, &stderr); err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(pidsOf(t, stdout.String())); got != c.want {
				t.Fatalf("pids %s, want %s", got, c.want)
			}
			want := ""
			if c.warnLoss {
				want = "warning: 5 events were lost in this window (ring_full_file=4, store_write_error=1): the answer may be incomplete\n"
			}
			if f.q.Limit > 0 {
				want += "note: --limit cut the answer short\n"
			}
			if stderr.String() != want {
				t.Fatalf("stderr %q, want %q", stderr.String(), want)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer that a test may read while a goroutine writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fakeDaemon struct{}

func (fakeDaemon) Snapshot() *status.Snapshot   { return &status.Snapshot{} }
func (fakeDaemon) Watched() ([]uint64, error)   { return nil, nil }
func (fakeDaemon) Containers() []container.Info { return nil }
func (fakeDaemon) PoliciesOf(uint64) []string   { return nil }
func (fakeDaemon) Posture() []posture.Report    { return nil }

// TestFollowWarnsOfLosses follows one container's file events: a live loss
// report is a warning on stderr, not an event on stdout, and the
// container's own events still print.
func TestFollowWarnsOfLosses(t *testing.T) {
	dir := stored(t)
	socket := t.TempDir() + "/api.sock"
	ln, err := api.Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	hub := api.NewHub()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- api.NewServer(fakeDaemon{}, hub, dir, nil).Serve(ctx, ln) }()

	f, err := parseEventsFlags([]string{"--store", dir, "--api-socket", socket, "--follow", "--container", "web", "--kind", "file", "-o", "json", "--since", "2026-11-28T10:00:58Z"}, io.Discard, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	fctx, stopFollow := context.WithCancel(ctx)
	followed := make(chan error, 1)
	go func() { followed <- runEvents(fctx, f, &stdout, &stderr) }()

	live := t0.Add(time.Hour) // after the stored events
	web := event.Event{Time: live, Kind: event.KindFile, Verdict: event.VerdictAllow, PID: 1000, Container: &event.Container{ID: "aaaa1111", Name: "web"}}
	db := event.Event{Time: live, Kind: event.KindFile, Verdict: event.VerdictAllow, PID: 1001, Container: &event.Container{ID: "bbbb2222", Name: "db"}}
	loss := event.Event{Time: live, Kind: event.KindSensor, Verdict: event.VerdictAllow, Message: event.LossMessage, Counts: map[string]uint64{"ring_full_exec": 9}}
	const warning = "warning: 9 events were lost at "
	// The follower subscribes when it starts: write until it has seen both.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), warning) || !strings.Contains(stdout.String(), `"pid":1000`) {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: stdout %q, stderr %q", stdout.String(), stderr.String())
		}
		live = live.Add(time.Millisecond)
		web.Time, db.Time, loss.Time = live, live, live
		for _, e := range []event.Event{db, loss, web} {
			line, err := e.MarshalLine()
			if err != nil {
				t.Fatal(err)
			}
			hub.Write(&e, line)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopFollow()
	if err := <-followed; err != nil {
		t.Fatalf("follow: %v", err)
	}
	if !strings.Contains(stderr.String(), "(ring_full_exec=9): the live stream may be incomplete") {
		t.Fatalf("stderr: %q", stderr.String())
	}
	got := pidsOf(t, stdout.String())
	if got[0] != 58 {
		t.Fatalf("stored events first: got %v", got)
	}
	for _, pid := range got[1:] {
		if pid != 1000 {
			t.Fatalf("the follower of web printed pid %d (all printed: %v)", pid, got)
		}
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

func TestDetailOfExitsAndSyscalls(t *testing.T) {
	one := int32(1)
	many := map[string]uint64{"openat": 38, "close": 38, "read": 120, "write": 7, "ia32:5": 2, "mmap": 9, "0": 1}
	tests := []struct {
		name string
		e    event.Event
		want string
	}{
		{"exit status", event.Event{Kind: event.KindExit, ExitCode: &one}, "exit code 1"},
		{"killed", event.Event{Kind: event.KindExit, Signal: 9}, "killed by signal 9 (SIGKILL)"},
		{"core", event.Event{Kind: event.KindExit, Signal: 11, CoreDumped: true}, "killed by signal 11 (SIGSEGV), core dumped"},
		{"unknown signal", event.Event{Kind: event.KindExit, Signal: 77}, "killed by signal 77"},
		{"top syscalls", event.Event{Kind: event.KindSyscalls, Counts: many},
			"215 syscalls: read 120, close 38, openat 38, mmap 9, write 7 (+2 more)"},
		{"few syscalls", event.Event{Kind: event.KindSyscalls, Counts: map[string]uint64{"openat": 3}}, "3 syscalls: openat 3"},
		{"no syscalls", event.Event{Kind: event.KindSyscalls}, "no syscalls"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := detail(&tc.e); got != tc.want {
				t.Errorf("detail = %q, want %q", got, tc.want)
			}
		})
	}
}
