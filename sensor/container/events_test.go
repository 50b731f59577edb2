package container

import (
	"context"
	"fmt"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestHandle feeds events for a container the watcher already knows. None
// of them needs to ask containerd, so no client is given.
func TestHandle(t *testing.T) {
	exited := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	startedAt := exited.Add(-time.Hour)
	ts := timestamppb.New(exited)

	tests := []struct {
		name     string
		events   []*events.Envelope
		wantGone []string // OnGone calls, as "namespace/id status"
		check    func(t *testing.T, info Info)
	}{
		{
			name:     "init exit",
			events:   []*events.Envelope{envelope(t, "default", &apievents.TaskExit{ContainerID: "c1", ID: "c1", Pid: 10, ExitStatus: 137, ExitedAt: ts})},
			wantGone: []string{"default/c1 137"},
			check: func(t *testing.T, info Info) {
				if !info.Exited.Equal(exited) || info.ExitStatus != 137 {
					t.Errorf("exit = %v %d, want %v 137", info.Exited, info.ExitStatus, exited)
				}
			},
		},
		{
			name:   "exec exit",
			events: []*events.Envelope{envelope(t, "default", &apievents.TaskExit{ContainerID: "c1", ID: "exec-1", Pid: 11, ExitedAt: ts})},
			check:  running,
		},
		{
			name: "exit, delete, container delete",
			events: []*events.Envelope{
				envelope(t, "default", &apievents.TaskExit{ContainerID: "c1", ID: "c1", ExitStatus: 1, ExitedAt: ts}),
				envelope(t, "default", &apievents.TaskDelete{ContainerID: "c1", ID: "c1", ExitStatus: 1, ExitedAt: ts}),
				envelope(t, "default", &apievents.ContainerDelete{ID: "c1"}),
			},
			wantGone: []string{"default/c1 1"},
		},
		{
			name:     "delete without exit",
			events:   []*events.Envelope{envelope(t, "default", &apievents.TaskDelete{ContainerID: "c1", ExitStatus: 2})},
			wantGone: []string{"default/c1 2"},
			check: func(t *testing.T, info Info) {
				if info.Exited.IsZero() {
					t.Error("no exit time without one in the event")
				}
			},
		},
		{
			name:     "container delete",
			events:   []*events.Envelope{envelope(t, "default", &apievents.ContainerDelete{ID: "c1"})},
			wantGone: []string{"default/c1 0"},
		},
		{
			name:   "same id in another namespace",
			events: []*events.Envelope{envelope(t, "k8s.io", &apievents.TaskExit{ContainerID: "c1", ID: "c1", ExitedAt: ts})},
			check:  running,
		},
		{
			name:   "unknown container",
			events: []*events.Envelope{envelope(t, "default", &apievents.TaskExit{ContainerID: "c2", ID: "c2", ExitedAt: ts})},
			check:  running,
		},
		{
			name: "update",
			events: []*events.Envelope{envelope(t, "default", &apievents.ContainerUpdate{ID: "c1", Image: "img:2",
				Labels: map[string]string{LabelPodName: "web", LabelPodNamespace: "shop"}})},
			check: func(t *testing.T, info Info) {
				if info.Image != "img:2" || info.Pod != "web" || info.PodNamespace != "shop" || info.Name != "c1" {
					t.Errorf("after update: %+v", info)
				}
			},
		},
		{
			name:   "start of a created task",
			events: []*events.Envelope{startedEnvelope(t, startedAt)},
			check: func(t *testing.T, info Info) {
				if !info.Started.Equal(startedAt) || info.Pid != 10 {
					t.Errorf("started = %v pid %d, want %v pid 10", info.Started, info.Pid, startedAt)
				}
			},
		},
		{
			name:   "create only",
			events: []*events.Envelope{envelope(t, "default", &apievents.ContainerCreate{ID: "c3", Image: "img"})},
			check:  running,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gone []string
			w, err := NewWatcher(WatcherConfig{
				Socket:  "unused",
				Cgroup2: t.TempDir(),
				OnGone:  func(i Info) { gone = append(gone, fmt.Sprintf("%s/%s %d", i.RuntimeNamespace, i.ID, i.ExitStatus)) },
			})
			if err != nil {
				t.Fatal(err)
			}
			w.announce(Info{RuntimeNamespace: "default", ID: "c1", Name: "c1", CgroupID: 5, Pid: 10})
			for _, env := range tt.events {
				w.handle(context.Background(), nil, env)
			}
			if fmt.Sprint(gone) != fmt.Sprint(tt.wantGone) {
				t.Errorf("OnGone calls = %v, want %v", gone, tt.wantGone)
			}
			info, ok := w.Cache().Lookup(5)
			if !ok {
				t.Fatal("the container no longer resolves")
			}
			if tt.check != nil {
				tt.check(t, info)
			}
		})
	}
}

func running(t *testing.T, info Info) {
	t.Helper()
	if info.Gone() {
		t.Errorf("container gone: %+v", info)
	}
}

func startedEnvelope(tb testing.TB, at time.Time) *events.Envelope {
	tb.Helper()
	env := envelope(tb, "default", &apievents.TaskStart{ContainerID: "c1", Pid: 10})
	env.Timestamp = at
	return env
}

// envelope wraps ev as containerd delivers it.
func envelope(tb testing.TB, ns string, ev any) *events.Envelope {
	tb.Helper()
	a, err := typeurl.MarshalAny(ev)
	if err != nil {
		tb.Fatal(err)
	}
	return &events.Envelope{Namespace: ns, Timestamp: time.Now(), Event: a}
}

func TestEventFilters(t *testing.T) {
	got := eventFilters()
	if len(got) != 7 || got[0] != `topic=="/tasks/create"` {
		t.Errorf("eventFilters = %q", got)
	}
}
