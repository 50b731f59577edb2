package netif

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrClosed is returned by Track after Close.
var ErrClosed = errors.New("netif: tracker closed")

// Tracker keeps the tracked interfaces of every registered network
// namespace current. Its methods are safe for concurrent use.
type Tracker struct {
	onChange func(Snapshot)
	log      *slog.Logger

	// deliverMu serializes onChange calls across watches.
	deliverMu sync.Mutex

	mu      sync.Mutex
	closed  bool
	holders map[string]registration
	watches map[NSKey]*watch
}

// registration is what one holder asked for: a namespace and names in it.
type registration struct {
	key   NSKey
	names []string
}

// New returns a Tracker that calls onChange with the state of a namespace's
// tracked interfaces whenever it changes (and first when it is listed).
// onChange runs on the Tracker's goroutines, one call at a time; it must not
// call the Tracker, nor wait for anything a caller of Track or Untrack may
// hold, as those wait for it. log receives subscription errors and
// recoveries; they are discarded when log is nil.
func New(onChange func(Snapshot), log *slog.Logger) *Tracker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tracker{
		onChange: onChange,
		log:      log,
		holders:  make(map[string]registration),
		watches:  make(map[NSKey]*watch),
	}
}

// Track registers holder (a caller's name for itself, such as a container
// id) as wanting the interfaces ifnames of the network namespace at nsPath
// (a nsfs file such as /proc/PID/ns/net; "" means the daemon's own
// namespace), and returns the namespace's key. Tracking a holder again
// replaces its names and, when nsPath names another namespace, moves it.
//
// The first holder of a namespace starts its watch: Track returns an error,
// and registers nothing, when the namespace cannot be opened, subscribed to
// or listed. When Track returns nil, onChange has been called with every
// change the call made to the namespace's snapshot, unless listing an
// already watched namespace failed, which is logged and retried.
func (t *Tracker) Track(holder string, nsPath string, ifnames []string) (NSKey, error) {
	names, err := cleanNames(ifnames)
	if err != nil {
		return 0, err
	}
	path := netnsPath(nsPath)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open netns %s: %w", path, err)
	}
	key, err := keyOfFD(fd, path)
	if err != nil {
		unix.Close(fd)
		return 0, err
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		unix.Close(fd)
		return 0, ErrClosed
	}
	old, had := t.holders[holder]
	t.holders[holder] = registration{key: key, names: names}
	w := t.watches[key]
	if w != nil {
		unix.Close(fd)
		w.setNames(t.namesOf(key))
	} else {
		w, err = startWatch(t, key, fd, t.namesOf(key))
		if err != nil {
			t.restore(holder, old, had)
			return 0, fmt.Errorf("netns %s: %w", path, err)
		}
		t.watches[key] = w
	}
	if had && old.key != key {
		t.release(old.key)
	}
	return key, nil
}

// Untrack removes holder's registration. The watch of its namespace follows
// the names of the remaining holders, and stops, closing its descriptors,
// when none remains; onChange is not called for that namespace afterwards.
// Untracking an unknown holder does nothing.
func (t *Tracker) Untrack(holder string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h, ok := t.holders[holder]
	if !ok {
		return
	}
	delete(t.holders, holder)
	t.release(h.key)
}

// Snapshot returns the last snapshot delivered for key, and false when key
// is not watched.
func (t *Tracker) Snapshot(key NSKey) (Snapshot, bool) {
	t.mu.Lock()
	w := t.watches[key]
	t.mu.Unlock()
	if w == nil {
		return Snapshot{}, false
	}
	return w.snapshot(), true
}

// Close stops every watch and waits for their goroutines to return, closing
// every netlink socket and namespace descriptor. Track fails afterwards.
func (t *Tracker) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for key, w := range t.watches {
		w.stopAndWait()
		delete(t.watches, key)
	}
	clear(t.holders)
}

// release updates the watch of key after one of its holders left or moved,
// stopping it when it has no holder left. t.mu is held.
func (t *Tracker) release(key NSKey) {
	w := t.watches[key]
	if w == nil {
		return
	}
	names := t.namesOf(key)
	if names == nil {
		w.stopAndWait()
		delete(t.watches, key)
		return
	}
	w.setNames(names)
}

// restore puts back a holder's previous registration after a failed Track.
func (t *Tracker) restore(name string, old registration, had bool) {
	if had {
		t.holders[name] = old
	} else {
		delete(t.holders, name)
	}
}

// namesOf returns the sorted union of the names of key's holders; nil when
// key has no holder. t.mu is held.
func (t *Tracker) namesOf(key NSKey) []string {
	var names []string
	found := false
	for _, h := range t.holders {
		if h.key == key {
			found = true
			names = append(names, h.names...)
		}
	}
	if !found {
		return nil
	}
	slices.Sort(names)
	return append([]string{}, slices.Compact(names)...)
}

func (t *Tracker) deliver(s Snapshot) {
	t.deliverMu.Lock()
	defer t.deliverMu.Unlock()
	t.onChange(s)
}

// cleanNames checks interface names: an interface name or altname is at
// most 127 bytes and holds no '/', NUL or whitespace.
func cleanNames(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n == "" || n == "." || n == ".." || len(n) > 127 || strings.ContainsAny(n, "/\x00 \t\n:") {
			return nil, fmt.Errorf("invalid interface name %q", n)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
