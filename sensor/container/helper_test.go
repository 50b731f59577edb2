package container

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/hostfs"
)

// recorder keeps what a Watcher announced.
type recorder struct {
	mu      sync.Mutex
	started []Info
	gone    []Info
}

func (r *recorder) onStart(i Info) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = append(r.started, i)
}

func (r *recorder) onGone(i Info) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gone = append(r.gone, i)
}

// count returns how many OnStart and OnGone calls were for id.
func (r *recorder) count(id string) (started, gone int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, i := range r.started {
		if i.ID == id {
			started++
		}
	}
	for _, i := range r.gone {
		if i.ID == id {
			gone++
		}
	}
	return started, gone
}

// waitGone waits for the OnGone call for id and returns its Info.
func (r *recorder) waitGone(tb testing.TB, id string) Info {
	tb.Helper()
	var got Info
	waitFor(tb, "OnGone("+id+")", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, i := range r.gone {
			if i.ID == id {
				got = i
				return true
			}
		}
		return false
	})
	return got
}

// waitStarted waits for the OnStart call for id and returns its Info.
func (r *recorder) waitStarted(tb testing.TB, id string) Info {
	tb.Helper()
	var got Info
	waitFor(tb, "OnStart("+id+")", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, i := range r.started {
			if i.ID == id {
				got = i
				return true
			}
		}
		return false
	})
	return got
}

// startWatcher runs a Watcher with cfg, its callbacks going to the returned
// recorder, until the test ends.
func startWatcher(tb testing.TB, cfg WatcherConfig) (*Watcher, *recorder) {
	tb.Helper()
	rec := &recorder{}
	cfg.OnStart, cfg.OnGone = rec.onStart, rec.onGone
	w, err := NewWatcher(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			tb.Error("Run did not return after its context ended")
		}
	})
	return w, rec
}

// waitFor polls cond until it holds, failing tb after fifteen seconds.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inode returns the inode number of path: the id of a cgroup directory.
func inode(tb testing.TB, path string) uint64 {
	tb.Helper()
	id, err := hostfs.CgroupID("/", path)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}
