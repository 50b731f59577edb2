package netif

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	// queryTimeout bounds one request on the watch's netlink handle.
	queryTimeout = 5 * time.Second
	// minBackoff and maxBackoff bound the wait between attempts to
	// subscribe and list again after a failure.
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// dumpRetries is how many times an address dump interrupted by a
	// concurrent change is started again before the watch backs off.
	dumpRetries = 3
	// maxDrain bounds the queued notifications skipped before a listing,
	// so a flood cannot postpone it forever.
	maxDrain = 4 * updateBuffer
)

// watch follows the tracked interfaces of one network namespace. Its
// goroutine, run, owns the namespace descriptor, the netlink handle and the
// subscription, and closes them when it returns.
type watch struct {
	t   *Tracker
	key NSKey
	log *slog.Logger
	ns  netns.NsHandle
	h   *netlink.Handle

	reqs chan namesReq
	stop chan struct{}
	done chan struct{}

	// want is the last name list sent to run; guarded by t.mu.
	want []string

	mu   sync.Mutex
	last Snapshot
	sent bool

	// Owned by run.
	names   []string
	indexes map[int]bool
	sub     *subscription
	retry   *time.Timer
	backoff time.Duration
}

// namesReq asks run to follow names; done is closed once it has listed them.
type namesReq struct {
	names []string
	done  chan struct{}
}

// startWatch takes ownership of fd, the namespace's descriptor, and starts
// the watch: it returns once the namespace has been subscribed to, listed and
// delivered, or has failed to be.
func startWatch(t *Tracker, key NSKey, fd int, names []string) (*watch, error) {
	ns := netns.NsHandle(fd)
	// Only NETLINK_ROUTE: by default a handle also opens XFRM and netfilter
	// sockets, and leaks those already opened when a later one fails.
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	if err := h.SetSocketTimeout(queryTimeout); err != nil {
		h.Close()
		ns.Close()
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	w := &watch{
		t: t, key: key, ns: ns, h: h,
		log:  t.log.With("netns", uint64(key)),
		reqs: make(chan namesReq),
		stop: make(chan struct{}),
		done: make(chan struct{}),
		want: names,
	}
	ready := make(chan error, 1)
	go w.run(names, ready)
	if err := <-ready; err != nil {
		<-w.done
		return nil, err
	}
	return w, nil
}

// setNames makes the watch follow names, waiting until it has listed them.
// t.mu is held.
func (w *watch) setNames(names []string) {
	if slices.Equal(names, w.want) {
		return
	}
	w.want = names
	r := namesReq{names: names, done: make(chan struct{})}
	w.reqs <- r
	<-r.done
}

// stopAndWait stops the watch and waits for its goroutine to release
// everything. t.mu is held.
func (w *watch) stopAndWait() {
	close(w.stop)
	<-w.done
}

// snapshot returns the last snapshot delivered.
func (w *watch) snapshot() Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

func (w *watch) run(names []string, ready chan<- error) {
	defer close(w.done)
	defer w.release()
	w.names = names
	err := w.resync()
	ready <- err
	if err != nil {
		return
	}
	for w.step() {
	}
}

func (w *watch) release() {
	if w.sub != nil {
		w.sub.close()
	}
	if w.retry != nil {
		w.retry.Stop()
	}
	w.h.Close()
	w.ns.Close()
}

// step waits for one thing to happen and handles it; it returns false when
// the watch is stopped.
func (w *watch) step() bool {
	var (
		addrs  <-chan netlink.AddrUpdate
		links  <-chan netlink.LinkUpdate
		retry  <-chan time.Time
		req    *namesReq
		update bool
	)
	if w.sub != nil {
		addrs, links = w.sub.addrs, w.sub.links
	}
	if w.retry != nil {
		retry = w.retry.C
	}
	select {
	case <-w.stop:
		return false
	case r := <-w.reqs:
		req, w.names, update = &r, r.names, true
	case u, ok := <-addrs:
		update = !ok || w.indexes[u.LinkIndex]
		if !ok {
			w.lost()
		}
	case u, ok := <-links:
		update = !ok || linkRelevant(w.names, w.indexes, u)
		if !ok {
			w.lost()
		}
	case <-retry:
		w.retry, update = nil, true
	}
	if update {
		w.drain()
		w.resyncOrRetry()
	}
	if req != nil {
		close(req.done)
	}
	return true
}

// drain skips the notifications already queued: the listing that follows
// covers them.
func (w *watch) drain() {
	for range maxDrain {
		if w.sub == nil {
			return
		}
		select {
		case _, ok := <-w.sub.addrs:
			if !ok {
				w.lost()
			}
		case _, ok := <-w.sub.links:
			if !ok {
				w.lost()
			}
		default:
			return
		}
	}
}

// lost drops a subscription whose reader has stopped (the error was
// reported through the error callback), so resync opens a new one.
func (w *watch) lost() {
	w.log.Warn("netlink subscription ended; subscribing again")
	w.sub.close()
	w.sub = nil
}

// resyncOrRetry resyncs, and on failure schedules another attempt with
// exponential backoff.
func (w *watch) resyncOrRetry() {
	err := w.resync()
	if err == nil {
		if w.backoff != 0 {
			w.log.Info("netns watch recovered")
		}
		w.backoff = 0
		if w.retry != nil {
			w.retry.Stop()
			w.retry = nil
		}
		return
	}
	w.backoff = nextBackoff(w.backoff)
	w.log.Warn("netns watch failed; retrying", "error", err, "retry_in", w.backoff)
	if w.retry != nil {
		w.retry.Stop()
	}
	w.retry = time.NewTimer(w.backoff)
}

// resync subscribes if there is no subscription, then lists the tracked
// interfaces and delivers their state if it changed. Subscribing first means
// a change made during the listing is notified after it.
func (w *watch) resync() error {
	if w.sub == nil {
		sub, err := subscribe(w.ns, func(err error) {
			w.log.Warn("netlink subscription error", "error", err)
		})
		if err != nil {
			return err
		}
		w.sub = sub
	}
	s, indexes, err := w.list()
	if err != nil {
		return err
	}
	w.indexes = indexes
	w.publish(s)
	return nil
}

// list reads the tracked interfaces' ifindex and addresses.
func (w *watch) list() (Snapshot, map[int]bool, error) {
	index := make(map[string]int, len(w.names))
	indexes := make(map[int]bool, len(w.names))
	for _, n := range w.names {
		link, err := w.h.LinkByName(n)
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			continue
		}
		if err != nil {
			return Snapshot{}, nil, fmt.Errorf("look up link %s: %w", n, err)
		}
		index[n] = link.Attrs().Index
		indexes[link.Attrs().Index] = true
	}
	var addrs []netlink.Addr
	if len(indexes) > 0 {
		var err error
		if addrs, err = w.listAddrs(); err != nil {
			return Snapshot{}, nil, err
		}
	}
	return buildSnapshot(w.key, w.names, index, addrs), indexes, nil
}

// listAddrs dumps the namespace's addresses, again when a concurrent change
// interrupted the dump: the library then returns a partial list along with
// ErrDumpInterrupted.
func (w *watch) listAddrs() ([]netlink.Addr, error) {
	for try := 0; ; try++ {
		addrs, err := w.h.AddrList(nil, netlink.FAMILY_ALL)
		if errors.Is(err, netlink.ErrDumpInterrupted) && try < dumpRetries {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list addresses: %w", err)
		}
		return addrs, nil
	}
}

// publish records s and delivers it when it differs from the last one, or
// is the first.
func (w *watch) publish(s Snapshot) {
	w.mu.Lock()
	changed := !w.sent || !s.Equal(w.last)
	w.last, w.sent = s, true
	w.mu.Unlock()
	if changed {
		w.t.deliver(s)
	}
}

// linkRelevant reports whether a link notification may change the state of
// the tracked names: it concerns a tracked ifindex (renamed, deleted, moved
// away), or carries a tracked name or altname (created, renamed, moved in).
func linkRelevant(names []string, indexes map[int]bool, u netlink.LinkUpdate) bool {
	if u.Link == nil {
		return true
	}
	a := u.Attrs()
	if indexes[a.Index] || slices.Contains(names, a.Name) {
		return true
	}
	for _, alt := range a.AltNames {
		if slices.Contains(names, alt) {
			return true
		}
	}
	return false
}

// nextBackoff doubles d within [minBackoff, maxBackoff].
func nextBackoff(d time.Duration) time.Duration {
	return min(max(2*d, minBackoff), maxBackoff)
}
