package netif

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"

	"github.com/ringfence/ringfence/enforce"
)

// Follower gives the policy engine the interfaces of containers'
// network namespaces, from a Tracker. Changes reach the engine on a
// goroutine of their own: the tracker reports the first state while the
// engine, which asked for it, holds its lock.
type Follower struct {
	tracker *Tracker
	engine  *enforce.Engine

	mu      sync.Mutex
	holders map[NSKey]map[uint64]bool
	keyOf   map[uint64]NSKey
	pins    map[uint64]*os.File // each followed container's network namespace
	pending map[NSKey]Snapshot
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
}

// NewFollower returns a Follower; SetEngine says where changes go.
func NewFollower(log *slog.Logger) *Follower {
	f := &Follower{holders: map[NSKey]map[uint64]bool{}, keyOf: map[uint64]NSKey{}, pins: map[uint64]*os.File{},
		pending: map[NSKey]Snapshot{}, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	f.tracker = New(f.changed, log)
	go f.deliver()
	return f
}

// SetEngine sets the engine that changes go to (the engine is made with
// the follower, so it comes second).
func (f *Follower) SetEngine(e *enforce.Engine) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.engine = e
}

// Follow starts following the named interfaces of a container's network
// namespace and returns their state now. The namespace is pinned the first
// time a container is followed (at its classification, before its code
// runs): later calls follow the same namespace whatever netns names then,
// so a process of the container that moves into a namespace of its own
// changes nothing of what the others may bind.
func (f *Follower) Follow(cgroup uint64, netns string, names []string) (map[string]enforce.Iface, error) {
	pinned, err := f.pin(cgroup, netns)
	if err != nil {
		return nil, err
	}
	key, err := f.tracker.Track(strconv.FormatUint(cgroup, 10), pinned, names)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	if old, ok := f.keyOf[cgroup]; ok && old != key {
		delete(f.holders[old], cgroup)
	}
	f.keyOf[cgroup] = key
	if f.holders[key] == nil {
		f.holders[key] = map[uint64]bool{}
	}
	f.holders[key][cgroup] = true
	f.mu.Unlock()
	snap, _ := f.tracker.Snapshot(key)
	return ifaceState(snap), nil
}

// Pin pins a container's network namespace (its path, /proc/<pid>/ns/net
// of a process of the container that has not run its own code yet) the
// first time it is called for the container; later calls change nothing.
func (f *Follower) Pin(cgroup uint64, netns string) error {
	_, err := f.pin(cgroup, netns)
	return err
}

// pin returns the path of the pinned network namespace of a container,
// opening netns to pin it the first time.
func (f *Follower) pin(cgroup uint64, netns string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.pins[cgroup]; ok {
		return "/proc/self/fd/" + strconv.Itoa(int(p.Fd())), nil
	}
	if netns == "" {
		return "", nil // the host's: nothing to pin
	}
	p, err := os.Open(netns)
	if err != nil {
		return "", fmt.Errorf("pin network namespace %s: %w", netns, err)
	}
	f.pins[cgroup] = p
	return "/proc/self/fd/" + strconv.Itoa(int(p.Fd())), nil
}

// Forget stops following a container that is gone and closes its pinned
// network namespace.
func (f *Follower) Forget(cgroup uint64) {
	f.Unfollow(cgroup)
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.pins[cgroup]; ok {
		p.Close()
		delete(f.pins, cgroup)
	}
}

// Unfollow stops following a container's interfaces; its network
// namespace stays pinned until Forget.
func (f *Follower) Unfollow(cgroup uint64) {
	f.tracker.Untrack(strconv.FormatUint(cgroup, 10))
	f.mu.Lock()
	defer f.mu.Unlock()
	if key, ok := f.keyOf[cgroup]; ok {
		delete(f.holders[key], cgroup)
		if len(f.holders[key]) == 0 {
			delete(f.holders, key)
		}
		delete(f.keyOf, cgroup)
	}
}

// changed is the tracker's callback: keep the latest state per namespace
// and wake the delivery goroutine.
func (f *Follower) changed(s Snapshot) {
	f.mu.Lock()
	f.pending[s.Key] = s
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *Follower) deliver() {
	defer close(f.done)
	for {
		select {
		case <-f.quit:
			return
		case <-f.wake:
		}
		f.mu.Lock()
		type update struct {
			cgroups []uint64
			state   map[string]enforce.Iface
		}
		var updates []update
		for key, snap := range f.pending {
			var cgs []uint64
			for cg := range f.holders[key] {
				cgs = append(cgs, cg)
			}
			updates = append(updates, update{cgs, ifaceState(snap)})
		}
		clear(f.pending)
		engine := f.engine
		f.mu.Unlock()
		for _, u := range updates {
			for _, cg := range u.cgroups {
				if engine != nil {
					engine.InterfacesChanged(cg, u.state)
				}
			}
		}
	}
}

// Close stops following every namespace.
func (f *Follower) Close() {
	close(f.quit)
	<-f.done
	f.tracker.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for cg, p := range f.pins {
		p.Close()
		delete(f.pins, cg)
	}
}

func ifaceState(s Snapshot) map[string]enforce.Iface {
	out := make(map[string]enforce.Iface, len(s.Interfaces))
	for _, i := range s.Interfaces {
		out[i.Name] = enforce.Iface{Index: uint32(i.Index), Addrs: i.Addrs}
	}
	return out
}
