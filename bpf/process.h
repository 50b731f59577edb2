/* Process lifecycle: exec and exit, from the scheduler tracepoints. These
 * fire after the exec has succeeded, so the new image's comm and argv are
 * what gets reported. */
#pragma once
#include "common.h"
#include "enforce.h"

#define SIGKILL 9
#define SIGSTOP 19

#define TMPFS_MAGIC 0x01021994

/* exe_is_memfd reports whether the executed file is an anonymous memory
 * file: on the kernel's internal tmpfs mount, which no process can name a
 * path on. The runtime's re-exec of itself from a sealed memfd is
 * recognised by that, never by a path or argv the image could choose. */
static __always_inline int exe_is_memfd(struct file *f)
{
	return internal_mount(f) && BPF_CORE_READ(f, f_inode, i_sb, s_magic) == TMPFS_MAGIC;
}

#define INIT_ARGS_LEN 64

/* runtime_self_exec reports whether the new image is the container
 * runtime's own re-exec: argv[1] is "init" and the file is a memfd or one
 * of the runtime's binaries on the host (runtime_exes). Judged by the
 * executed object: before any of a container's code has run, nothing in
 * its image can make its entrypoint a memfd or the host's runtime binary. */
static __always_inline int runtime_self_exec(struct task_struct *task, __u64 ino, __u32 dev, __u32 flags)
{
	if (!(flags & EXE_MEMFD)) {
		struct file_id id = { .ino = ino, .dev = dev, ._pad = 0 };
		if (!bpf_map_lookup_elem(&runtime_exes, &id))
			return 0;
	}
	unsigned long start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long end = BPF_CORE_READ(task, mm, arg_end);
	unsigned long len = end > start ? end - start : 0;
	if (len > INIT_ARGS_LEN)
		len = INIT_ARGS_LEN;
	char buf[INIT_ARGS_LEN] = {};
	barrier_var(len);
	if (len == 0 || len > INIT_ARGS_LEN || bpf_probe_read_user(buf, len, (void *)start))
		return 0;
	/* argv[0] ends at the first NUL; argv[1] must be exactly "init". */
	for (int i = 0; i < INIT_ARGS_LEN - 5; i++) {
		if (buf[i] != 0)
			continue;
		return buf[i + 1] == 'i' && buf[i + 2] == 'n' && buf[i + 3] == 'i' && buf[i + 4] == 't' &&
		       buf[i + 5] == 0 && (unsigned long)(i + 5) < len;
	}
	return 0;
}

static __always_inline int on_exec(struct task_struct *task, struct linux_binprm *bprm)
{
	__u64 cg = current_watched();
	if (!cg)
		return 0;

	struct file *f = BPF_CORE_READ(bprm, file);
	struct inode *ino = BPF_CORE_READ(f, f_inode);
	__u64 exe_ino = BPF_CORE_READ(ino, i_ino);
	__u32 exe_dev = BPF_CORE_READ(ino, i_sb, s_dev);
	__u32 exe_flags = exe_is_memfd(f) ? EXE_MEMFD : 0;

	/* An unclassified container's exec stops before the new image runs its
	 * first instruction: the signal is taken on the way back to userspace.
	 * It stops even when the ring has no room for the report: userspace
	 * finds the stopped processes of pending cgroups when it polls. The
	 * runtime's own re-exec runs on, daemon or not: the hold waits for the
	 * container's entrypoint. */
	__u32 held = 0;
	if (bpf_map_lookup_elem(&pending, &cg)) {
		if (runtime_self_exec(task, exe_ino, exe_dev, exe_flags)) {
			exe_flags |= EXE_RUNTIME;
		} else {
			bpf_send_signal(SIGSTOP);
			held = 1;
		}
	}
	struct exec_event *e = RESERVE(struct exec_event, DROP_RING_EXEC);
	if (!e)
		return 0;
	fill_hdr_traced(&e->hdr, cg, KIND_EXEC, SOURCE_TRACEPOINT);
	e->held = held;
	e->exe_ino = exe_ino;
	e->exe_dev = exe_dev;
	e->exe_flags = exe_flags;
	long n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));
	e->filename_len = n > 0 ? n - 1 : 0;

	unsigned long start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long end = BPF_CORE_READ(task, mm, arg_end);
	unsigned long len = end > start ? end - start : 0;
	e->args_truncated = len > ARGS_LEN;
	if (len > ARGS_LEN)
		len = ARGS_LEN;
	e->args_len = 0;
	barrier_var(len);
	if (len > 0 && len <= ARGS_LEN && bpf_probe_read_user(e->args, len, (void *)start) == 0)
		e->args_len = len;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* exec_enforce applies "nothing may execute" where no LSM hook can refuse
 * the exec (cgroup-only tier): the new image is killed before its first
 * instruction, as the signal is taken on the way back to userspace. */
static __always_inline void exec_enforce(struct linux_binprm *bprm)
{
	if (cfg_exec_from_lsm)
		return;
	__u64 cg = bpf_get_current_cgroup_id();
	struct member *m = task_member(cg);
	if (!m || m->exec_action == ACTION_NONE)
		return;
	if (m->exec_action == ACTION_DENY)
		bpf_send_signal(SIGKILL);
	exec_violation(cg, m, SOURCE_TRACEPOINT, BPF_CORE_READ(bprm, filename));
}

/* lsm_bprm_check refuses the exec itself on the full tier. */
static __always_inline int lsm_bprm_check(struct linux_binprm *bprm)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct member *m = task_member(cg);
	if (!m || m->exec_action == ACTION_NONE)
		return 0;
	exec_violation(cg, m, SOURCE_LSM, BPF_CORE_READ(bprm, filename));
	return m->exec_action == ACTION_DENY ? -EPERM : 0;
}

static __always_inline int on_exit(struct task_struct *task)
{
	/* One event per process, not per thread. */
	if (BPF_CORE_READ(task, pid) != BPF_CORE_READ(task, tgid))
		return 0;
	__u64 cg = current_watched();
	if (!cg)
		return 0;

	struct exit_event *e = RESERVE(struct exit_event, DROP_RING_EXIT);
	if (!e)
		return 0;
	fill_hdr_traced(&e->hdr, cg, KIND_EXIT, SOURCE_TRACEPOINT);
	e->exit_code = BPF_CORE_READ(task, exit_code);
	e->_pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* A watched cgroup's descendants are watched too, from their creation on:
 * done here in the kernel so no process can start in a new child cgroup
 * before userspace hears of it. Only the cgroup v2 hierarchy counts. */
#define MAX_RUNTIME_DEPTH 8

static __always_inline struct cgroup *parent_cgroup(struct cgroup *c)
{
	struct cgroup_subsys_state *pcss = BPF_CORE_READ(c, self.parent);
	return pcss ? container_of(pcss, struct cgroup, self) : 0;
}

/* below_runtime reports whether an ancestor of c is a runtime parent. */
static __always_inline int below_runtime(struct cgroup *c)
{
	struct cgroup *a = parent_cgroup(c);
	for (int i = 0; i < MAX_RUNTIME_DEPTH && a; i++) {
		__u64 id = BPF_CORE_READ(a, kn, id);
		if (bpf_map_lookup_elem(&runtime_parents, &id))
			return 1;
		a = parent_cgroup(a);
	}
	return 0;
}

/* A runtime parent that does not exist yet is known by name: the key is the
 * cgroup that will hold it (or its next missing ancestor) and the name of
 * the child to come. Found at the child's creation, so the first container
 * of a new runtime namespace is held like every other. */

/* runtime_parent_made reports whether the new cgroup id (child of parent
 * pid) is a configured runtime parent, marking it so; a part of the way to
 * one makes the next part known by name. */
static __always_inline int runtime_parent_made(struct cgroup *cgrp, __u64 pid, __u64 id)
{
	struct parent_name k = { .parent = pid };
	bpf_probe_read_kernel_str(k.name, sizeof(k.name), BPF_CORE_READ(cgrp, kn, name));
	struct parent_step *st = bpf_map_lookup_elem(&runtime_parent_names, &k);
	if (!st)
		return 0;
	__u32 one = 1;
	if (st->depth >= st->last) {
		if (bpf_map_update_elem(&runtime_parents, &id, &one, BPF_ANY))
			count_drop(DROP_WATCH_MAP_FULL);
		return 1;
	}
	struct parent_step next = { .dir = st->dir, .depth = st->depth + 1, .last = st->last };
	__u32 pk = next.dir * MAX_PARENT_PARTS + next.depth;
	struct parent_part *part = bpf_map_lookup_elem(&runtime_parent_parts, &pk);
	if (!part)
		return 0;
	struct parent_name nk = { .parent = id };
	__builtin_memcpy(nk.name, part->name, sizeof(nk.name));
	if (bpf_map_update_elem(&runtime_parent_names, &nk, &next, BPF_ANY))
		count_drop(DROP_WATCH_MAP_FULL);
	return 0;
}

static __always_inline int on_cgroup_mkdir(struct cgroup *cgrp)
{
	if (BPF_CORE_READ(cgrp, root, hierarchy_id) != 0)
		return 0;
	struct cgroup *parent = parent_cgroup(cgrp);
	if (!parent)
		return 0;
	__u64 id = BPF_CORE_READ(cgrp, kn, id);
	__u64 pid = BPF_CORE_READ(parent, kn, id);
	__u32 one = 1;
	if (bpf_map_lookup_elem(&exempt, &pid)) {
		/* Below the sensor's own cgroup (its pod's, where a restarted
		 * sensor container is made): the sensor, never held, never
		 * judged, whether or not a daemon runs. */
		if (bpf_map_update_elem(&exempt, &id, &one, BPF_ANY))
			count_drop(DROP_WATCH_MAP_FULL);
		return 0;
	}
	if (runtime_parent_made(cgrp, pid, id))
		return 0;
	__u32 *flags = bpf_map_lookup_elem(&watched, &pid);
	int in_runtime = below_runtime(cgrp);
	if (flags && in_runtime && !bpf_map_lookup_elem(&pending, &pid) &&
	    !bpf_map_lookup_elem(&runtime_parents, &pid)) {
		/* Made inside a container userspace has classified: part of
		 * it, watched, not a new container. */
		__u64 *o = bpf_map_lookup_elem(&owners, &pid);
		__u64 owner = o ? *o : pid;
		__u32 v = *flags;
		if (bpf_map_update_elem(&owners, &id, &owner, BPF_ANY) ||
		    bpf_map_update_elem(&watched, &id, &v, BPF_ANY))
			count_drop(DROP_WATCH_MAP_FULL);
		return 0;
	}
	if (in_runtime) {
		/* A container's cgroup: watched, and held at its first exec
		 * until userspace has classified it. */
		__u64 now = bpf_ktime_get_boot_ns();
		if (bpf_map_update_elem(&pending, &id, &now, BPF_ANY) ||
		    bpf_map_update_elem(&watched, &id, &one, BPF_ANY))
			count_drop(DROP_WATCH_MAP_FULL);
		return 0;
	}
	if (!flags)
		return 0;
	__u32 v = *flags;
	if (bpf_map_update_elem(&watched, &id, &v, BPF_ANY))
		count_drop(DROP_WATCH_MAP_FULL);
	return 0;
}

static __always_inline int on_cgroup_rmdir(struct cgroup *cgrp)
{
	if (BPF_CORE_READ(cgrp, root, hierarchy_id) != 0)
		return 0;
	__u64 id = BPF_CORE_READ(cgrp, kn, id);
	bpf_map_delete_elem(&watched, &id);
	bpf_map_delete_elem(&pending, &id);
	bpf_map_delete_elem(&members, &id);
	bpf_map_delete_elem(&owners, &id);
	bpf_map_delete_elem(&exempt, &id);
	return 0;
}
