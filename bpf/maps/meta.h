/* What describes the pinned state, for the next daemon: its layout and programs (meta, map_layouts), and the loss counts the last daemon reported. */
#pragma once
#include "../abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pin_meta);
} meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct map_name);
	__type(value, struct layout_hash);
} map_layouts SEC(".maps");

/* The drops map's counts as the daemon last reported them: the next one
 * reports what was lost while none ran. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DROP_CAUSE_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops_reported SEC(".maps");
