/* The event ring and the counts of what it could not hold. */
#pragma once
#include "../abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_CAUSE_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");
