package kernel

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ringfence/ringfence/test/testenv"
)

// TestPrivilegedLockPinsWaits: while a daemon holds the pins, LockPins
// without wait is refused with ErrPinsInUse, with wait it returns once the
// daemon's Close released them (or with ctx's error); a Load given the
// lock leaves it held at Close, for its caller to release.
func TestPrivilegedLockPinsWaits(t *testing.T) {
	testenv.Privileged(t)
	dir := pinTestDir(t)
	first := loadPinned(t, Options{PinDir: dir})
	if _, err := LockPins(context.Background(), dir, false); !errors.Is(err, ErrPinsInUse) {
		t.Fatalf("LockPins while a daemon holds the pins: %v, want ErrPinsInUse", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := LockPins(ctx, dir, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("LockPins waiting past its context: %v", err)
	}
	got := make(chan *PinLock, 1)
	go func() {
		l, err := LockPins(context.Background(), dir, true)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	select {
	case <-got:
		t.Fatal("the waiting LockPins returned while the first daemon held the pins")
	case <-time.After(500 * time.Millisecond):
	}
	first.Close()
	var lock *PinLock
	select {
	case lock = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("LockPins still waiting 5 s after the first daemon released the pins")
	}
	if lock == nil {
		t.FailNow()
	}
	p, err := ProbeTier()
	if err != nil {
		t.Fatal(err)
	}
	second, err := Load(p, Options{PinDir: dir, Lock: lock})
	if err != nil {
		t.Fatal(err)
	}
	second.Close()
	if _, err := LockPins(context.Background(), dir, false); !errors.Is(err, ErrPinsInUse) {
		t.Fatalf("after Close of a load given the lock, the lock is free: %v", err)
	}
	if err := lock.Release(); err != nil {
		t.Fatal(err)
	}
	l, err := LockPins(context.Background(), dir, false)
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	l.Release()
}
