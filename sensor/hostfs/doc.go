// Package hostfs reads what the host's pseudo-filesystems say about cgroups
// and processes: the mount table (where cgroup v2 is mounted, never assumed),
// the cgroup v2 tree (a cgroup's id is its directory's inode), and /proc (a
// process's cgroup, state, parent, credentials and command line). Identity,
// holds and adoption all read the host through it. Every function does I/O:
// keep them off the event hot path.
package hostfs
