/* Per-CPU working records, off the 512-byte stack: paths, events and decisions are built here, never in ring space. */
#pragma once
#include "../abi.h"

struct path_scratch {
	char buf[PATH_LEN * 2];
	__u64 names[MAX_DEPTH]; /* const unsigned char *, as integers for the Go bindings */
};

/* Working records, off the 512-byte stack and independent of the ring:
 * a decision never waits on ring space. */
struct enforce_scratch {
	struct file_event fe;
	struct violation_event ve;
	struct allow_key key;
	struct root_key root;
	/* an object's path inside its filesystem, and slack for reading it
	 * from an offset */
	char opath[PATH_LEN * 2];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct path_scratch);
} path_scratch SEC(".maps");

/* One working record per CPU for each context a program can run in. A
 * packet program runs in a softirq, which can interrupt a hook of the
 * process context on the same CPU between building its record and
 * reporting it: sharing one record, the packet's violation would overwrite
 * it midway. */
enum scratch_slot {
	SCRATCH_TASK = 0,
	SCRATCH_PACKET = 1,
	SCRATCH_SLOTS = 2,
};
const enum scratch_slot *unused_scratch_slot __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SCRATCH_SLOTS);
	__type(key, __u32);
	__type(value, struct enforce_scratch);
} enforce_scratch SEC(".maps");

/* Threads whose O_TRUNC open file_open has just judged and reported, with
 * the file's dentry: the truncate hook the kernel calls next for that open
 * (handle_truncate: path_truncate up to 6.1, file_truncate from 6.2) finds
 * it here and stays quiet, so the operation gives one event. The judgement
 * cannot wait for the truncate hook: overlayfs truncates in its open, when
 * it copies the file up, which runs after file_open and before that hook. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);   /* pid_tgid */
	__type(value, __u64); /* struct dentry * */
} open_truncs SEC(".maps");
