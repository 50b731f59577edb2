/* Which cgroups are watched and held: containers, their runtime parents, the cgroups made inside them, and the sensor's own. */
#pragma once
#include "../abi.h"

/* Watched cgroup v2 ids. The only lookup an unwatched process pays. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u32);
} watched SEC(".maps");

/* Cgroups under which the container runtime creates containers: a new
 * cgroup below one of them is watched and pending from its creation. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u32);
} runtime_parents SEC(".maps");

/* Container cgroups not yet classified by userspace, with their creation
 * time: an exec in one is held until userspace deletes the entry. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} pending SEC(".maps");

/* The container runtime's binaries on the host (runc), by file identity:
 * with a memfd, what "<argv0> init" may be executed from without being
 * held, so that a container's setup completes while no daemon runs. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct file_id);
	__type(value, __u32);
} runtime_exes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct parent_name);
	__type(value, struct parent_step);
} runtime_parent_names SEC(".maps");

/* The parts of each configured runtime parent: key dir * MAX_PARENT_PARTS + depth. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct parent_part);
} runtime_parent_parts SEC(".maps");

/* A cgroup made inside a classified container (by the container itself, or
 * its runtime) belongs to that container: this maps it to the container's
 * cgroup, for its identity. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} owners SEC(".maps");


/* Cgroups whose processes no policy judges and no hold stops: the sensor's
 * own and its pod's, and the cgroups made below them (marked at mkdir), so
 * that an enforcing policy that selects everything can never stop it and a
 * sensor container restarted while no daemon runs is not held. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u32);
} exempt SEC(".maps");
