/* Violation accounting: the rate limit of identical reports, and counts by rule and action that go on while no daemon reads the ring. */
#pragma once
#include "../abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct violation_key);
	__type(value, struct violation_state);
} violation_limits SEC(".maps");


/* Violations by rule and action (index rule * 4 + action), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 32);
	__type(key, __u32);
	__type(value, __u64);
} violation_counts SEC(".maps");
