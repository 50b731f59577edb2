/* Shared types, maps and helpers of the ringfence eBPF programs.
 * Everything userspace must agree on is an enum or a struct here, so bpf2go
 * exports it to Go through BTF. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#define COMM_LEN 16
#define PATH_LEN 512   /* power of two: offsets are masked with PATH_LEN-1 */
#define NAME_LEN 256   /* one path component, NUL included */
#define FILENAME_LEN 256
#define ARGS_LEN 1024  /* power of two */

enum event_kind {
	KIND_EXEC = 1,
	KIND_EXIT = 2,
	KIND_FILE = 3,
	KIND_BIND = 4,
	KIND_VIOLATION = 5,
};

/* Which mechanism produced an event: lets a reader tell an in-kernel
 * resolved path (LSM) from a syscall argument (tracepoint). */
enum event_source {
	SOURCE_TRACEPOINT = 1,
	SOURCE_LSM = 2,
	SOURCE_CGROUP = 3,
};

enum file_op {
	FILE_OP_OPEN = 1,
	FILE_OP_CREATE,
	FILE_OP_TRUNCATE,
	FILE_OP_UNLINK,
	FILE_OP_RENAME,
	FILE_OP_LINK,
	FILE_OP_SYMLINK,
	FILE_OP_MKDIR,
	FILE_OP_RMDIR,
	FILE_OP_MKNOD,
	FILE_OP_CHMOD,
	FILE_OP_CHOWN,
	FILE_OP_SETXATTR,
	FILE_OP_REMOVEXATTR,
	FILE_OP_UTIMES,
	FILE_OP_FALLOCATE,
};

/* How to read a path field of a file event. */
enum path_kind {
	PATH_NONE = 0,
	PATH_ABSOLUTE = 1, /* resolved by the kernel against the process root */
	PATH_RELATIVE = 2, /* as the process passed it, relative to dirfd (AT_FDCWD: cwd) */
	PATH_FD = 3,       /* no name: the object is the open file dirfd */
	PATH_FS = 4,       /* resolved from the dentry: relative to its filesystem root */
	PATH_HANDLE = 5,   /* a file handle (open_by_handle_at) on the filesystem mounted at path (or dirfd) */
};

/* Why an event was not delivered. Indexes the drops map. */
enum drop_cause {
	DROP_RING_EXEC = 0,
	DROP_RING_EXIT = 1,
	DROP_RING_FILE = 2,
	DROP_RING_BIND = 3,
	DROP_SYSCALL_MAP_FULL = 4,
	DROP_WATCH_MAP_FULL = 5,
	DROP_RING_VIOLATION = 6,
	DROP_CAUSE_MAX = 7,
};

struct event_hdr {
	__u64 ts_boot_ns;
	__u64 cgroup_id;
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	__u16 kind;
	__u16 source;
	/* 1 while the cgroup is a container not yet classified by userspace */
	__u32 pending;
	__u32 _pad;
	char comm[COMM_LEN];
};

/* exec_event.exe_flags */
enum exe_flag {
	/* The executed file is an anonymous memory file (memfd): on the
	 * kernel's internal tmpfs mount, which no process can name a path on. */
	EXE_MEMFD = 1,
};

struct exec_event {
	struct event_hdr hdr;
	__u32 filename_len;
	__u32 args_len;
	__u32 args_truncated;
	__u32 held; /* stopped before its first instruction, until userspace releases it */
	/* The executed file, as an object: what a path or argv cannot forge. */
	__u64 exe_ino;
	__u32 exe_dev;
	__u32 exe_flags;
	char filename[FILENAME_LEN];
	char args[ARGS_LEN];
};

struct exit_event {
	struct event_hdr hdr;
	__s32 exit_code;
	__u32 _pad;
};

struct file_event {
	struct event_hdr hdr;
	__u32 op;
	__u32 flags;
	__u32 mode;
	__u32 owner_uid;
	__u32 owner_gid;
	__s32 dirfd;
	__s32 dirfd2;
	__u16 path_kind;
	__u16 path2_kind;
	__u32 path_len;
	__u32 path2_len;
	char path[PATH_LEN];
	char path2[PATH_LEN];
};

struct bind_event {
	struct event_hdr hdr;
	__u16 family;
	__u16 port;
	__u16 protocol;
	__u16 type;
	__u8 addr[16];
};

struct syscall_key {
	__u64 cgroup_id;
	__u32 nr;
	__u32 _pad;
};

/* Load-time configuration, set by the loader before the verifier sees it. */
volatile const __u32 cfg_files_from_lsm = 0;     /* full tier: LSM reports file writes */
volatile const __u32 cfg_setattr_has_idmap = 0;  /* inode_setattr(idmap, dentry, attr) */
volatile const __u32 cfg_exec_from_lsm = 0;      /* full tier: exec denials in bprm_check_security */

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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct syscall_key);
	__type(value, __u64);
} syscall_counts SEC(".maps");

/* Force the generated Go types into existence even where C code uses none. */
const enum event_kind *unused_event_kind __attribute__((unused));
const enum event_source *unused_event_source __attribute__((unused));
const enum file_op *unused_file_op __attribute__((unused));
const enum path_kind *unused_path_kind __attribute__((unused));
const enum drop_cause *unused_drop_cause __attribute__((unused));
const enum exe_flag *unused_exe_flag __attribute__((unused));
const struct exec_event *unused_exec_event __attribute__((unused));
const struct exit_event *unused_exit_event __attribute__((unused));
const struct file_event *unused_file_event __attribute__((unused));
const struct bind_event *unused_bind_event __attribute__((unused));

static __always_inline void count_drop(__u32 cause)
{
	__u64 *n = bpf_map_lookup_elem(&drops, &cause);
	if (n)
		(*n)++;
}

/* current_watched returns the cgroup id of the current task when it is watched, else 0. */
static __always_inline __u64 current_watched(void)
{
	__u64 cg = bpf_get_current_cgroup_id();
	if (!bpf_map_lookup_elem(&watched, &cg))
		return 0;
	return cg;
}

#define TS_COMPAT 0x0002 /* thread_info.status: in an ia32 syscall */

/* in_compat_syscall reports whether the current task is in an ia32 syscall. */
static __always_inline int in_compat_syscall(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	return (BPF_CORE_READ(task, thread_info.status) & TS_COMPAT) != 0;
}

static __always_inline void fill_hdr(struct event_hdr *h, __u64 cg, __u16 kind, __u16 source)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 pidtgid = bpf_get_current_pid_tgid();
	__u64 uidgid = bpf_get_current_uid_gid();

	h->ts_boot_ns = bpf_ktime_get_boot_ns();
	h->cgroup_id = cg;
	h->pid = pidtgid >> 32;
	h->tid = (__u32)pidtgid;
	h->ppid = BPF_CORE_READ(task, real_parent, tgid);
	h->uid = (__u32)uidgid;
	h->gid = uidgid >> 32;
	h->kind = kind;
	h->source = source;
	h->pending = bpf_map_lookup_elem(&pending, &cg) != 0;
	h->_pad = 0;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* RESERVE returns a record of the ring sized for type, its contents
 * uninitialised (the caller fills every field), or NULL after counting the
 * loss under cause. */
#define RESERVE(type, cause) ({                                        \
	type *__e = bpf_ringbuf_reserve(&events, sizeof(type), 0);      \
	if (!__e)                                                       \
		count_drop(cause);                                      \
	__e; })

char LICENSE[] SEC("license") = "GPL";
