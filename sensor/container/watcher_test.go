package container

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWatcherUnreachable needs no containerd: there is none at the socket,
// and the watcher must say so and keep trying.
func TestWatcherUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "absent.sock")
	w, _ := startWatcher(t, WatcherConfig{
		Socket:     sock,
		Cgroup2:    t.TempDir(),
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
	})
	waitFor(t, "an error in the status", func() bool { return !w.Status().LastErrorAt.IsZero() })
	st := w.Status()
	if st.Connected || st.Socket != sock || st.Reconnects != 0 || !strings.Contains(st.LastError, sock) {
		t.Errorf("status = %+v, want disconnected with the dial's error on %s", st, sock)
	}
	first := st.LastErrorAt
	waitFor(t, "another attempt", func() bool { return w.Status().LastErrorAt.After(first) })
}

// TestWatcherStopsInItsBackoff ends Run while it waits to retry an absent
// containerd: the status says it stopped, not the last dial's error.
func TestWatcherStopsInItsBackoff(t *testing.T) {
	w, err := NewWatcher(WatcherConfig{Socket: filepath.Join(t.TempDir(), "absent.sock"), Cgroup2: t.TempDir(),
		MinBackoff: time.Hour, MaxBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitFor(t, "the first attempt's error", func() bool { return !w.Status().LastErrorAt.IsZero() })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := w.Status(); st.LastError != stoppedReason {
		t.Errorf("stopped in its backoff: status = %+v, want the reason %q", st, stoppedReason)
	}
}

// TestWatcherStatusSaysWhy checks that a disconnected status always has a
// reason: before the first attempt ends, and after Run returns.
func TestWatcherStatusSaysWhy(t *testing.T) {
	w, err := NewWatcher(WatcherConfig{Socket: filepath.Join(t.TempDir(), "absent.sock"), Cgroup2: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if st := w.Status(); st.Connected || st.LastError != notYetConnected {
		t.Errorf("before Run: status = %+v, want the reason %q", st, notYetConnected)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := w.Status(); st.Connected || st.LastError != stoppedReason || st.LastErrorAt.IsZero() {
		t.Errorf("after Run: status = %+v, want the reason %q with its time", st, stoppedReason)
	}
}

func TestNewWatcher(t *testing.T) {
	tests := []struct {
		name    string
		cfg     WatcherConfig
		wantErr string
		check   func(t *testing.T, w *Watcher)
	}{
		{name: "no socket", cfg: WatcherConfig{Cgroup2: "/x"}, wantErr: "no containerd socket"},
		{
			name: "defaults",
			cfg:  WatcherConfig{Socket: "/s", Cgroup2: "/x"},
			check: func(t *testing.T, w *Watcher) {
				c := w.cfg
				if c.ProcRoot != "/proc" || c.MinBackoff != DefaultMinBackoff || c.MaxBackoff != DefaultMaxBackoff ||
					c.ResyncInterval != DefaultResyncInterval || w.Cache() == nil || w.Cache().grace != DefaultGrace {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{
			name: "max below min",
			cfg:  WatcherConfig{Socket: "/s", Cgroup2: "/x", MinBackoff: time.Minute, MaxBackoff: time.Second},
			check: func(t *testing.T, w *Watcher) {
				if w.cfg.MaxBackoff < w.cfg.MinBackoff {
					t.Errorf("max backoff %v below min %v", w.cfg.MaxBackoff, w.cfg.MinBackoff)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewWatcher(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, w)
		})
	}
}
