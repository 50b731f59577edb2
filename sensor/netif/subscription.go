package netif

import (
	"fmt"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// updateBuffer is how many notifications of each kind may wait for the
// watch; past it the library's reader blocks and the kernel queues, up to
// the socket's receive buffer.
const updateBuffer = 64

// subscription is a pair of netlink subscriptions, to link and to address
// changes, opened in one network namespace. The library runs a reader
// goroutine for each, which closes its channel when the socket fails or is
// closed.
type subscription struct {
	addrs chan netlink.AddrUpdate
	links chan netlink.LinkUpdate
	// done closes both sockets.
	done chan struct{}
	// closing silences the receive errors that closing the sockets causes.
	closing atomic.Bool
}

// subscribe opens both subscriptions in ns; report receives the errors the
// library's readers meet while they run.
//
// No receive buffer size or timeout is set: the library returns without
// closing the socket when setting one fails.
func subscribe(ns netns.NsHandle, report func(error)) (*subscription, error) {
	s := &subscription{done: make(chan struct{})}
	onErr := func(err error) {
		if !s.closing.Load() {
			report(err)
		}
	}
	addrs := make(chan netlink.AddrUpdate, updateBuffer)
	err := netlink.AddrSubscribeWithOptions(addrs, s.done, netlink.AddrSubscribeOptions{
		Namespace: &ns, ErrorCallback: onErr,
	})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("subscribe to address changes: %w", err)
	}
	s.addrs = addrs
	links := make(chan netlink.LinkUpdate, updateBuffer)
	err = netlink.LinkSubscribeWithOptions(links, s.done, netlink.LinkSubscribeOptions{
		Namespace: &ns, ErrorCallback: onErr,
	})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("subscribe to link changes: %w", err)
	}
	s.links = links
	return s, nil
}

// close closes the sockets and waits for the readers to return: a reader
// may be blocked sending on its channel, so each channel is drained until
// the reader closes it.
func (s *subscription) close() {
	s.closing.Store(true)
	close(s.done)
	if s.addrs != nil {
		for range s.addrs {
		}
	}
	if s.links != nil {
		for range s.links {
		}
	}
}
