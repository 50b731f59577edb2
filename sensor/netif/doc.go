// Package netif keeps the ifindex and addresses of named network interfaces
// current, per network namespace, for the interface-binding rule: a
// container may accept traffic only on the addresses of the interfaces its
// policy names (names as seen inside its network namespace, such as "eth0"
// or "lo"), and may bind a socket with SO_BINDTODEVICE only to their
// ifindex.
//
// # Design
//
// A [Tracker] runs one watch per network namespace, keyed by the
// namespace's inode ([NSKey], the number the kernel also calls the netns
// inum), so containers that share a namespace share one watch. Callers
// register as holders ([Tracker.Track]); a watch follows the union of its
// holders' interface names and stops when its last holder leaves
// ([Tracker.Untrack]).
//
// A watch owns a descriptor of its namespace, a netlink handle opened in it
// (for queries) and two netlink subscriptions opened in it, one to link
// changes and one to IPv4 and IPv6 address changes. The subscriptions are
// opened before the first listing, so no change can fall between the two.
//
// Notifications are used only as triggers: a notification that concerns a
// tracked name or ifindex makes the watch drain whatever else is queued and
// list the tracked interfaces again (one RTM_GETLINK by name each, one
// address dump). The listing is the state; nothing is patched from the
// content of a notification. This makes every recovery the same operation:
// when a subscription ends (ENOBUFS after an overflow, or any receive
// error), the watch subscribes again and lists again, with backoff while
// that fails. For the same reason the subscriptions' ListExisting option is
// not used: its replies arrive as a stream of updates with no end marker,
// so a watch could not tell when it had seen all of the current state, and
// could not drop what had disappeared while it was not listening.
//
// A listing that differs from the last one delivered is passed to the
// onChange callback as a [Snapshot]. Calls are serialized across all watches,
// and none is made for a namespace after Untrack has removed its last holder
// or after Close.
//
// A watch's descriptors keep its network namespace alive, even after every
// process in it has exited, until its last holder calls Untrack.
package netif
