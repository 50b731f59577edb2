// Package container tells which container a cgroup id belongs to, so that
// events carrying only a cgroup_id can name their container, image and pod.
//
// A Watcher follows containerd over its API and keeps a Cache current; the
// Cache answers Lookup on the event hot path without I/O and keeps a gone
// container for a grace period so that late events still resolve. When the
// runtime API is down, IDFromCgroupPath and Fallback name a container from
// its cgroup path alone.
package container
