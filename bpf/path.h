/* Turning kernel path objects into strings, in the path buffer of the
 * hook's working record (maps/scratch.h).
 * Two views, neither of them the acting process's own: hooks with a struct
 * path (or an open file) get the path in the mount namespace, crossing
 * mounts up to the namespace's root whatever root the process chrooted
 * into; the read-only rule gets an object's path inside its own filesystem,
 * from the dentries alone, whatever mounts lead to it. */
#pragma once
#include "common.h"

/* append_str writes "/" and the string at src (user or kernel memory) at off
 * in s->buf and returns the new length, never past PATH_LEN - 1; a string
 * that does not fit whole marks the path cut. */
static __always_inline __u32 append_str(struct path_scratch *s, __u32 off, const void *src, int user)
{
	if (off >= PATH_LEN - 1) {
		s->cut = 1;
		return off;
	}
	/* Keep clang from dropping the masks: the verifier needs them. */
	barrier_var(off);
	s->buf[off & (PATH_LEN - 1)] = '/';
	off++;
	barrier_var(off);
	char *dst = &s->buf[off & (PATH_LEN - 1)];
	long n = user ? bpf_probe_read_user_str(dst, PATH_LEN, src) : bpf_probe_read_kernel_str(dst, PATH_LEN, src);
	if (n > 1)
		off += n - 1;
	/* One range for every outcome, so the verifier can prune the loop. */
	if (off > PATH_LEN - 1) {
		off = PATH_LEN - 1;
		s->cut = 1;
	}
	return off;
}

static __always_inline __u32 append_name(struct path_scratch *s, __u32 off, const unsigned char *name)
{
	return append_str(s, off, name, 0);
}

/* copy_out copies the len bytes of s->buf and a NUL into dst (PATH_LEN),
 * nothing past them, and returns the stored length. */
static __always_inline __u32 copy_out(struct path_scratch *s, __u32 len, char *dst)
{
	if (len > PATH_LEN - 1)
		len = PATH_LEN - 1;
	s->buf[len & (PATH_LEN - 1)] = 0;
	bpf_probe_read_kernel(dst, (len & (PATH_LEN - 1)) + 1, s->buf);
	return len;
}

struct walk_state {
	struct path_scratch *s; /* the walk's buffer, in the hook's record */
	__u64 d, vmnt, mnt, mnt_off;
	/* the root mount of the current task's mount namespace, 0 unknown */
	__u64 ns_root;
	__u32 n, off;
	/* the walk stopped before the root: too deep, its path incomplete */
	__u32 truncated;
	/* the walk reached the root: of the filesystem (no vfsmount), or of
	 * the mount namespace */
	__u32 done;
};

/* walk_step moves one step towards the root: up one dentry, recording its
 * name, or across one mount point. Returns 1 to stop. */
static long walk_step(__u64 i, void *ctx)
{
	struct walk_state *w = ctx;
	struct path_scratch *s = w->s;
	struct dentry *d = (struct dentry *)w->d;
	struct vfsmount *vmnt = (struct vfsmount *)w->vmnt;
	if (vmnt && d == BPF_CORE_READ(vmnt, mnt_root)) {
		struct mount *mnt = (struct mount *)w->mnt;
		struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
		if (!up || up == mnt) {
			/* The root of the mount tree: the namespace's, or that of a
			 * tree detached from it (umount -l, open_tree), whose path
			 * names nothing in the namespace. */
			w->done = !w->ns_root || (__u64)mnt == w->ns_root;
			return 1;
		}
		w->d = (__u64)BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = (__u64)up;
		w->vmnt = (__u64)up + w->mnt_off;
		return 0;
	}
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	if (!parent || parent == d) {
		/* The filesystem's root, or a disconnected dentry (a file
		 * opened by handle, say): no path from a root. Below a
		 * vfsmount only a disconnected one ends here (its root is
		 * handled above); without one, it is not its superblock's
		 * root. Such a path is as unknown as one too deep. */
		if (vmnt || d != BPF_CORE_READ(d, d_sb, s_root))
			w->truncated = 1;
		else
			w->done = 1;
		return 1;
	}
	if (w->n >= MAX_DEPTH) {
		w->truncated = 1;
		return 1;
	}
	s->names[w->n & (MAX_DEPTH - 1)] = (__u64)BPF_CORE_READ(d, d_name.name);
	w->n++;
	w->d = (__u64)parent;
	return 0;
}

/* emit_step appends the i-th name from the root. Returns 1 to stop. */
static long emit_step(__u64 i, void *ctx)
{
	struct walk_state *w = ctx;
	struct path_scratch *s = w->s;
	if (i >= w->n)
		return 1;
	w->off = append_name(s, w->off, (const unsigned char *)s->names[(w->n - 1 - i) & (MAX_DEPTH - 1)]);
	return 0;
}

/* emit_names appends to s->buf the names w's walk kept, from the top, and
 * returns the path's length ("/" when none). */
static __always_inline __u32 emit_names(struct walk_state *w)
{
	bpf_loop(MAX_DEPTH, emit_step, w, 0);
	__u32 off = w->off;
	if (off == 0)
		w->s->buf[off++] = '/';
	if (off > PATH_LEN - 1)
		off = PATH_LEN - 1;
	return off;
}

/* path_walk writes into s->buf the path of dentry d and returns its length.
 * With a vfsmount it crosses mount points up to the root of the mount
 * namespace (a chroot changes nothing); without one it stops at the root of
 * d's filesystem. Unlike bpf_d_path it works in any program type. The loops
 * run in bpf_loop so the verifier checks each step once. *truncated is set
 * when the path was deeper than MAX_DEPTH components; s->cut when it was
 * cut short in any way (too deep, out of steps, too long) or is not from
 * the namespace's root (a detached tree, a disconnected dentry), until
 * the next walk.
 *
 * A global function: the verifier checks it once per program, on its own,
 * whatever state its callers are in, where an inlined copy at each of a
 * program's call sites is checked again in every state that reaches it.
 * Newer verifiers (6.12 and 6.18 here, not 6.1) also follow each bpf_loop
 * callback until its states converge; inlined, that made rf_sys_enter cost
 * 660,000 instructions on 6.18 and the file hooks 270,000-550,000 each on
 * 6.12. The caller gets back a length it knows nothing of but what
 * copy_out clamps. */
__noinline __u32 path_walk_t(struct path_scratch *s, __u64 dentry, __u64 vfsmount, __u32 *truncated)
{
	if (!truncated)
		return 0;
	if (!s) {
		*truncated = 1; /* no path known: judged as one too deep */
		return 0;
	}
	struct walk_state w = {
		.s = s,
		.d = dentry,
		.vmnt = vfsmount,
		.mnt_off = bpf_core_field_offset(struct mount, mnt),
	};
	if (vfsmount) {
		w.mnt = vfsmount - w.mnt_off;
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		w.ns_root = (__u64)BPF_CORE_READ(task, nsproxy, mnt_ns, root);
	}
	/* The count of names starts at 0 through a read the verifier does not
	 * follow. Known to be 0, it would be exact at every step, each step's
	 * state unlike the last, and the verifier would follow both loops to
	 * their end in every one (6.12: 270,000 instructions a walk). */
	__u32 zero = 0;
	bpf_probe_read_kernel(&w.n, sizeof(w.n), &zero);
	s->cut = 0;
	bpf_loop(MAX_DEPTH + 8, walk_step, &w, 0);
	__u32 off = emit_names(&w);
	/* Too deep, or out of steps before the root (mounts crossed take
	 * steps too): the deepest names only, from no root. */
	if (w.truncated || !w.done)
		s->cut = 1;
	*truncated = w.truncated;
	return off;
}

static __always_inline __u32 path_walk(struct path_scratch *s, __u64 dentry, __u64 vfsmount)
{
	__u32 truncated = 0; /* initialised: a global function's pointer argument is read */
	return path_walk_t(s, dentry, vfsmount, &truncated);
}

/* MAX_CLIMB bounds top_path's climb: twice the names a path the kernel
 * takes whole can hold (PATH_MAX, 4096 bytes, "a/" each). */
#define MAX_CLIMB 4096

struct climb_state {
	struct path_scratch *s;
	__u64 d;
	__u32 n;
	/* the climb reached its filesystem's root */
	__u32 done;
};

/* climb_step moves one dentry up, keeping the names of the last MAX_DEPTH
 * it left: at the end, the topmost. Returns 1 to stop. */
static long climb_step(__u64 i, void *ctx)
{
	struct climb_state *c = ctx;
	struct dentry *d = (struct dentry *)c->d;
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	if (!parent || parent == d) {
		c->done = d == BPF_CORE_READ(d, d_sb, s_root); /* not a disconnected dentry */
		return 1;
	}
	c->s->names[c->n & (MAX_DEPTH - 1)] = (__u64)BPF_CORE_READ(d, d_name.name);
	c->n++;
	c->d = (__u64)parent;
	return 0;
}

/* top_path_t writes into s->buf the path inside its filesystem of the
 * topmost MAX_DEPTH names above dentry (and its own, when it has no more):
 * where a path too deep for path_walk starts, which is what tells which
 * container root holds it. Returns its length; 0 when the climb does not
 * reach the filesystem's root (deeper than MAX_CLIMB names, or a
 * disconnected dentry). A global function, as path_walk_t. */
__noinline __u32 top_path_t(struct path_scratch *s, __u64 dentry)
{
	if (!s)
		return 0;
	struct climb_state c = { .s = s, .d = dentry };
	__u32 zero = 0; /* a count the verifier does not follow, as in path_walk_t */
	bpf_probe_read_kernel(&c.n, sizeof(c.n), &zero);
	bpf_loop(MAX_CLIMB, climb_step, &c, 0);
	if (!c.done)
		return 0;
	struct walk_state w = { .s = s, .n = c.n };
	s->cut = 0;
	return emit_names(&w);
}

/* path_kind_of is kind for the path just built in s, PATH_TRUNCATED when it
 * was cut short. */
static __always_inline __u16 path_kind_of(struct path_scratch *s, __u16 kind)
{
	return s->cut ? PATH_TRUNCATED : kind;
}

/* path_append_user appends "/" and the user string at uptr to the off bytes
 * of s->buf ("/" alone counts as empty) and returns the new length. */
static __always_inline __u32 path_append_user(struct path_scratch *s, __u32 off, __u64 uptr)
{
	return append_str(s, off == 1 ? 0 : off, (const void *)uptr, 1);
}

/* scalar_of returns the address p holds as a number. A hook's own
 * arguments are typed kernel pointers to the verifier, which a global
 * function does not take; read back from the stack, the address is a plain
 * scalar, as every address BPF_CORE_READ returns already is. */
static __always_inline __u64 scalar_of(const void *p)
{
	__u64 v = 0;
	bpf_probe_read_kernel(&v, sizeof(v), &p);
	return v;
}

/* dentry_path writes the path of d inside its filesystem (no mount crossing). */
static __always_inline __u32 dentry_path(struct path_scratch *s, struct dentry *d, char *dst)
{
	return copy_out(s, path_walk(s, scalar_of(d), 0), dst);
}

/* object_path writes the path of d inside its filesystem, as dentry_path,
 * and says whether it was too deep to be whole. */
static __always_inline __u32 object_path(struct path_scratch *s, struct dentry *d, char *dst, __u32 *truncated)
{
	return copy_out(s, path_walk_t(s, scalar_of(d), 0, truncated), dst);
}

/* file_path writes the path of an open file in its mount namespace. */
static __always_inline __u32 file_path(struct path_scratch *s, struct file *f, char *dst)
{
	return copy_out(s, path_walk(s, (__u64)BPF_CORE_READ(f, f_path.dentry), (__u64)BPF_CORE_READ(f, f_path.mnt)), dst);
}

/* fd_file returns the current task's open file fd, or NULL. */
static __always_inline struct file *fd_file(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	if (fd < 0 || (unsigned int)fd >= max)
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* dir_then_user writes dir's path, "/", then the user string rel: a
 * relative path resolved against a directory. Returns the length. */
static __always_inline __u32 dir_then_user(struct path_scratch *s, struct dentry *d, struct vfsmount *m, const char *rel, char *dst)
{
	__u32 off = path_walk(s, (__u64)d, (__u64)m);
	return copy_out(s, path_append_user(s, off, (__u64)rel), dst);
}

/* d_path_child writes the path of dir (a struct path) followed by child's
 * name when given. bpf_d_path would do for some hooks only (path_mknod, for
 * one, is not on its allow list), so every hook walks the same way. */
static __always_inline __u32 d_path_child(struct path_scratch *s, struct path *dir, struct dentry *child, char *dst)
{
	__u32 off = path_walk(s, (__u64)BPF_CORE_READ(dir, dentry), (__u64)BPF_CORE_READ(dir, mnt));
	if (child) {
		if (off == 1)
			off = 0; /* the directory is "/": avoid "//name" */
		off = append_name(s, off, BPF_CORE_READ(child, d_name.name));
	}
	return copy_out(s, off, dst);
}
