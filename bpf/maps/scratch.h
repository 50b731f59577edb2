/* Working records, off the 512-byte stack: paths, events and decisions are built here, never in ring space. */
#pragma once
#include "../abi.h"

struct path_scratch {
	char buf[PATH_LEN * 2];
	__u64 names[MAX_DEPTH]; /* const unsigned char *, as integers for the Go bindings */
	/* The path last built was cut short: set by the walk (too deep, out
	 * of steps) and by every append that reached PATH_LEN - 1 bytes. */
	__u64 cut;
};

/* A task's working record, off the 512-byte stack and independent of the
 * ring: a decision never waits on ring space. */
struct enforce_scratch {
	struct path_scratch ps;
	struct file_event fe;
	struct violation_event ve;
	struct allow_key key;
	struct root_key root;
	/* an object's path inside its filesystem, and slack for reading it
	 * from an offset */
	char opath[PATH_LEN * 2];
};

/* Each task's own working record, for the file hooks (LSM) and the syscall
 * tracepoint: made at its first use (task storage) and gone with the task.
 *
 * Hooks run with migration disabled but not always preemption: on a kernel
 * that preempts (preempt=full, PREEMPT_RT, lazy preemption) a task can be
 * switched out in the middle of a hook and another task's hook run on the
 * same CPU before it resumes. A record per CPU would then be rewritten
 * under the first hook, which would judge the other task's path; a
 * task's own record no other hook can reach, and no number of preempted
 * hooks can use them all up. A task runs one hook at a time. The map grows
 * with the tasks of watched containers that write, 5.1 KB each (a task's
 * own kernel stack is 16 KB); a record that cannot be made leaves the
 * write unjudged, refused where a read-only rule may reach (fail closed). */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct enforce_scratch);
} task_records SEC(".maps");

/* A record a violation report is built in, by programs that have no task
 * storage (the cgroup programs, the packet program) and by the exec hooks. */
struct report_record {
	/* Held by a hook running on this CPU: taken with an atomic exchange,
	 * given back before the hook returns. */
	__u64 busy;
	struct violation_event ve;
};

/* Report records per CPU: SCRATCH_TASKS claimed by the hooks of the
 * process context (record_claim), which a preempted hook keeps held, and
 * one for the packet program. A hook that finds every one held loses its
 * report and counts it (the decision stands). The packet program runs in
 * a softirq, which no other packet program interrupts on its CPU but which
 * can interrupt a hook of the process context: its record is its own,
 * never claimed. */
enum scratch_slot {
	SCRATCH_TASK = 0,   /* the first record of the process context */
	SCRATCH_TASKS = 4,
	SCRATCH_PACKET = 4,
	SCRATCH_SLOTS = 5,
};
const enum scratch_slot *unused_scratch_slot __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SCRATCH_SLOTS);
	__type(key, __u32);
	__type(value, struct report_record);
} report_records SEC(".maps");

/* Threads whose O_TRUNC open file_open has just judged and reported, with
 * the file's dentry: the truncate hook the kernel calls next for that open
 * (handle_truncate: path_truncate up to 6.1, file_truncate from 6.2) finds
 * it here and stays quiet, so the operation gives one event. The judgement
 * cannot wait for the truncate hook: overlayfs truncates in its open, when
 * it copies the file up, which runs after file_open and before that hook.
 * Likewise, keyed with TOLD_IOCTL set, threads whose ioctl setting a
 * file's attribute flags file_ioctl has just reported: inode_file_setattr
 * (6.17+), which the kernel calls next for it, stays quiet. At most one
 * entry of each kind a thread; an entry the LRU drops makes the next hook
 * report once more, never less. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);   /* pid_tgid, | TOLD_IOCTL for an ioctl's */
	__type(value, __u64); /* struct dentry * */
} open_truncs SEC(".maps");
