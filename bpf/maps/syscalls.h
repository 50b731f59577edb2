/* Syscall counts per cgroup. */
#pragma once
#include "../abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct syscall_key);
	__type(value, __u64);
} syscall_counts SEC(".maps");
