/* What every program uses: the ABI (abi.h), the maps (maps/), the
 * load-time settings and the helpers that fill and reserve records. */
#pragma once

#include "abi.h"
#include "maps/events.h"
#include "maps/cgroups.h"
#include "maps/policy.h"
#include "maps/violations.h"
#include "maps/syscalls.h"
#include "maps/scratch.h"
#include "maps/meta.h"

/* Load-time configuration, set by the loader before the verifier sees it. */
volatile const __u32 cfg_files_from_lsm = 0;     /* full tier: LSM reports file writes */
volatile const __u32 cfg_setattr_has_idmap = 0;  /* inode_setattr(idmap, dentry, attr) */
volatile const __u32 cfg_exec_from_lsm = 0;      /* full tier: exec denials in bprm_check_security */
volatile const __u32 cfg_overlay_known = 0;      /* the kernel's BTF describes overlayfs (struct ovl_fs) */


/* harmless_ioctl reports whether cmd is an ioctl known to leave the file
 * it is made on, and its file system, as they were: it asks (a terminal's
 * settings, the bytes to read, the attribute flags, the extents, verity and
 * encryption state) or changes only the descriptor (close-on-exec, blocking).
 * Every other ioctl on a regular file or a directory is judged as a write of
 * it, whatever its number says: the attribute and generation setters
 * (chattr), FS_IOC_ENABLE_VERITY, btrfs's subvolume and snapshot
 * creation and deletion, ext4's extent migration, an encryption policy set on
 * a directory, and what a file system adds tomorrow. The 32-bit forms are
 * what an ia32 process passes (and 6.1 hands file_ioctl as they are). */
static __always_inline int harmless_ioctl(__u32 cmd)
{
	switch (cmd) {
	case 0x5401:     /* TCGETS: isatty() on any descriptor */
	case 0x5405:     /* TCGETA */
	case 0x802c542a: /* TCGETS2 */
	case 0x540f:     /* TIOCGPGRP */
	case 0x5411:     /* TIOCOUTQ */
	case 0x5413:     /* TIOCGWINSZ */
	case 0x5429:     /* TIOCGSID */
	case 0x541b:     /* FIONREAD */
	case 0x5421:     /* FIONBIO */
	case 0x5450:     /* FIONCLEX */
	case 0x5451:     /* FIOCLEX */
	case 0x5452:     /* FIOASYNC */
	case 0x5460:     /* FIOQSIZE */
	case 0x1:        /* FIBMAP */
	case 0x2:        /* FIGETBSZ */
	case 0xc020660b: /* FS_IOC_FIEMAP */
	case 0x80086601: /* FS_IOC_GETFLAGS */
	case 0x80046601: /* FS_IOC32_GETFLAGS */
	case 0x80087601: /* FS_IOC_GETVERSION */
	case 0x80047601: /* FS_IOC32_GETVERSION */
	case 0x80086603: /* EXT4_IOC_GETVERSION */
	case 0x80046603: /* EXT4_IOC32_GETVERSION */
	case 0x801c581f: /* FS_IOC_FSGETXATTR */
	case 0x81009431: /* FS_IOC_GETFSLABEL */
	case 0x80111500: /* FS_IOC_GETFSUUID */
	case 0x80811501: /* FS_IOC_GETFSSYSFSPATH */
	case 0x400c6615: /* FS_IOC_GET_ENCRYPTION_POLICY (declared _IOW) */
	case 0xc0096616: /* FS_IOC_GET_ENCRYPTION_POLICY_EX */
	case 0xc080661a: /* FS_IOC_GET_ENCRYPTION_KEY_STATUS */
	case 0x8010661b: /* FS_IOC_GET_ENCRYPTION_NONCE */
	case 0xc0046686: /* FS_IOC_MEASURE_VERITY */
	case 0xc0286687: /* FS_IOC_READ_VERITY_METADATA */
	case 0xc0c0583b: /* FS_IOC_GETFSMAP */
	case 0x8008662c: /* EXT4_IOC_GETFSUUID */
	case 0xc020662a: /* EXT4_IOC_GET_ES_CACHE */
	case 0x8100587e: /* XFS_IOC_FSGEOMETRY */
	case 0x800c581e: /* XFS_IOC_DIOINFO */
	case 0xd0009412: /* BTRFS_IOC_INO_LOOKUP */
	case 0xd000943e: /* BTRFS_IOC_INO_LOOKUP_USER */
	case 0x8400941f: /* BTRFS_IOC_FS_INFO */
	case 0x81f8943c: /* BTRFS_IOC_GET_SUBVOL_INFO */
	case 0x80189439: /* BTRFS_IOC_GET_FEATURES */
	case 0xc0109414: /* BTRFS_IOC_SPACE_INFO */
	case 0x80089419: /* BTRFS_IOC_SUBVOL_GETFLAGS */
	case 0x8004f50c: /* F2FS_IOC_GET_FEATURES */
	case 0x1260:     /* BLKGETSIZE: a disk image probed as a device */
	case 0x1268:     /* BLKSSZGET */
	case 0x80081272: /* BLKGETSIZE64 */
	case 0x80041272: /* BLKGETSIZE64, from an ia32 process */
	case 0x81e8943c: /* BTRFS_IOC_GET_SUBVOL_INFO, from an ia32 process */
		return 1;
	}
	return 0;
}

#define O_PATH_FLAG 010000000 /* O_PATH, kept in an O_PATH file's f_flags */

/* A mount of the kernel's own (kern_mount: pipes, sockets, anonymous
 * inodes, nsfs, memfd's shmem; overlayfs's private mounts of its layers)
 * has this as its namespace, ERR_PTR(-EINVAL). */
#define MNT_NS_INTERNAL ((__u64)-22)

/* internal_mount reports whether f is on a mount of the kernel's own, in no
 * namespace: no process reaches a root's files through one. */
static __always_inline int internal_mount(struct file *f)
{
	__u64 vm = (__u64)BPF_CORE_READ(f, f_path.mnt);
	struct mount *m = (struct mount *)(vm - bpf_core_field_offset(struct mount, mnt));
	return (__u64)BPF_CORE_READ(m, mnt_ns) == MNT_NS_INTERNAL;
}

/* judged_ioctl_file reports whether an ioctl on f is judged: one on a
 * regular file or a directory of a mounted file system changes its objects.
 * One on a device, a socket or a pipe works on what lies behind; a file of
 * the kernel's own mounts (nsfs's namespaces, which are regular files, and
 * from 6.15 the anonymous inodes of eventfd, epoll, perf, KVM and
 * userfaultfd, which look like regular files inside the kernel) is in no
 * root; an O_PATH descriptor takes no ioctl (EBADF). overlayfs's own call
 * for the real file under an overlay file, on its private mount, follows
 * the call on the overlay file, judged already. */
static __always_inline int judged_ioctl_file(struct file *f)
{
	__u32 type = BPF_CORE_READ(f, f_inode, i_mode) & 0170000;
	if (type != 0100000 /* S_IFREG */ && type != 0040000 /* S_IFDIR */)
		return 0;
	if (BPF_CORE_READ(f, f_flags) & O_PATH_FLAG)
		return 0;
	return !internal_mount(f);
}

/* count_drop counts a record lost. Atomic although the counter is this
 * CPU's: the packet program, in a softirq, can interrupt a hook's
 * increment on the same CPU. */
static __always_inline void count_drop(__u32 cause)
{
	__u64 *n = bpf_map_lookup_elem(&drops, &cause);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/* current_watched returns the cgroup id of the current task when it is
 * watched, else 0. Every caller is a tracing or LSM program, on every
 * syscall of the node for sys_enter: the id is read directly from the
 * task (what bpf_get_current_cgroup_id reads: its css_set's default
 * hierarchy cgroup's kernfs node), guarded loads rather than a helper
 * call. */
static __always_inline __u64 current_watched(void)
{
	__u64 cg = bpf_get_current_task_btf()->cgroups->dfl_cgrp->kn->id;
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

/* in_compat_syscall_traced is in_compat_syscall for tracing and LSM
 * programs, which may read the current task directly (guarded loads, no
 * helper call per field). */
static __always_inline int in_compat_syscall_traced(void)
{
	return (bpf_get_current_task_btf()->thread_info.status & TS_COMPAT) != 0;
}

static __always_inline void fill_hdr_ppid(struct event_hdr *h, __u64 cg, __u16 kind, __u16 source, __u32 ppid)
{
	__u64 pidtgid = bpf_get_current_pid_tgid();
	__u64 uidgid = bpf_get_current_uid_gid();

	h->ts_boot_ns = bpf_ktime_get_boot_ns();
	h->cgroup_id = cg;
	h->pid = pidtgid >> 32;
	h->tid = (__u32)pidtgid;
	h->ppid = ppid;
	h->uid = (__u32)uidgid;
	h->gid = uidgid >> 32;
	h->kind = kind;
	h->source = source;
	h->pending = bpf_map_lookup_elem(&pending, &cg) != 0;
	h->_pad = 0;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* fill_hdr fills the header of a record about the current task. */
static __always_inline void fill_hdr(struct event_hdr *h, __u64 cg, __u16 kind, __u16 source)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	fill_hdr_ppid(h, cg, kind, source, BPF_CORE_READ(task, real_parent, tgid));
}

/* fill_hdr_traced is fill_hdr for tracing and LSM programs: the parent is
 * read directly, not through two helper calls. */
static __always_inline void fill_hdr_traced(struct event_hdr *h, __u64 cg, __u16 kind, __u16 source)
{
	fill_hdr_ppid(h, cg, kind, source, bpf_get_current_task_btf()->real_parent->tgid);
}

/* report_slot returns this CPU's report record in slot. */
static __always_inline struct report_record *report_slot(__u32 slot)
{
	return bpf_map_lookup_elem(&report_records, &slot);
}

/* record_claim claims one of this CPU's report records of the process
 * context for the running hook, which gives it back (record_release)
 * before it returns; NULL, counted, when every one is held by a hook
 * another task was preempted in (see maps/scratch.h). */
static __always_inline struct report_record *record_claim(void)
{
	for (__u32 i = SCRATCH_TASK; i < SCRATCH_TASK + SCRATCH_TASKS; i++) {
		struct report_record *r = report_slot(i);
		if (r && __sync_lock_test_and_set(&r->busy, 1) == 0)
			return r;
	}
	count_drop(DROP_NO_RECORD);
	return 0;
}

/* record_release gives back a record record_claim gave, after every use
 * of it. */
static __always_inline void record_release(struct report_record *r)
{
	asm volatile("" ::: "memory");
	*(volatile __u64 *)&r->busy = 0;
}

/* task_record returns the current task's own working record, made at its
 * first use (maps/scratch.h); NULL, counted, when it cannot be made. For
 * tracing and LSM programs: the helpers of task storage are theirs. */
static __always_inline struct enforce_scratch *task_record(void)
{
	struct enforce_scratch *sc = bpf_task_storage_get(&task_records, bpf_get_current_task_btf(), 0,
							  BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!sc)
		count_drop(DROP_NO_RECORD);
	return sc;
}

/* file_event_output copies e into the ring up to the end of its last path,
 * its NUL included: a path is most often a few dozen bytes of its
 * PATH_LEN, so the record is a fraction of the struct and the ring holds
 * that many more. The reader takes the missing tail as zeroes. */
static __always_inline void file_event_output(struct file_event *e)
{
	__u64 size = __builtin_offsetof(struct file_event, path) + (e->path_len & (PATH_LEN - 1)) + 1;
	if (e->path2_kind != PATH_NONE)
		size = __builtin_offsetof(struct file_event, path2) + (e->path2_len & (PATH_LEN - 1)) + 1;
	if (bpf_ringbuf_output(&events, e, size, 0))
		count_drop(DROP_RING_FILE);
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
