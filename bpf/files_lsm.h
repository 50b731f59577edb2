/* File writes on the full tier, from BPF-LSM hooks. The path hooks sit after
 * path lookup on every route into the VFS (syscalls, io_uring, nfsd alike),
 * so unlike the syscall tracepoint they cannot be sidestepped and see the
 * resolved path. They also enforce the read-only root filesystem rule: each
 * builds its event in the task's working record (maps/scratch.h), judges
 * it, reports it (and the violation) and answers 0 or -EPERM. */
#pragma once
#include "path.h"
#include "enforce.h"

#define FMODE_WRITE 0x2
#define FMODE_CREATED 0x100000
#define ATTR_MODE (1 << 0)
#define ATTR_UID (1 << 1)
#define ATTR_GID (1 << 2)
#define ATTR_SIZE (1 << 3)
#define ATTR_ATIME (1 << 4)
#define ATTR_MTIME (1 << 5)
#define LSM_O_TRUNC 01000
#define LSM_O_TMPFILE 020000000
#define LSM_S_IFMT 0170000
#define LSM_S_IFREG 0100000

#define OVERLAYFS_SUPER_MAGIC 0x794c7630

/* overlay_work reports whether the current task runs with overlayfs's
 * credentials for the overlay that is its root: the task is inside an
 * operation on its root filesystem that a hook has judged and reported
 * already, and overlayfs is doing its part on the layers below (copying a
 * file up: its data, xattrs and times; opening the real file). Only the
 * overlay takes those credentials, its own (struct ovl_fs); a task cannot
 * put them on, where io_uring's personalities and a core dump's writer
 * override credentials too. When the kernel's BTF does not describe
 * overlayfs (cfg_overlay_known: a module not loaded when the programs
 * were), this is never true. */
static __always_inline int overlay_work(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	const struct cred *cred = task->cred;
	if (cred == task->real_cred)
		return 0;
	if (!cfg_overlay_known || !bpf_core_field_exists(struct ovl_fs, creator_cred))
		return 0;
	struct super_block *sb = BPF_CORE_READ(task, fs, root.mnt, mnt_sb);
	if (BPF_CORE_READ(sb, s_magic) != OVERLAYFS_SUPER_MAGIC)
		return 0;
	struct ovl_fs *ofs = BPF_CORE_READ(sb, s_fs_info);
	return BPF_CORE_READ(ofs, creator_cred) == cred;
}

/* internal_file reports whether file is one the kernel opened for itself
 * under another file: its mount is the kernel's own (an overlay's private
 * layer mount, as 6.8+ backing files have), or its path is not its inode's
 * (a fake path: the overlay file's, as the real file opened under it has
 * before 6.8). Such an open follows one of the file above it, which was
 * reported (a pipe or memfd reopened through /proc is in the kernel's
 * mounts too, and on no root filesystem). */
static __always_inline int internal_file(struct file *file)
{
	if (internal_mount(file))
		return 1;
	return BPF_CORE_READ(file, f_inode) != BPF_CORE_READ(file, f_path.dentry, d_inode);
}

/* unjudged answers a write to d (and d2) the task's working record could
 * not be made to judge: refused when either object is on a device that
 * holds a read-only
 * container root, whose rule it may fall under (fail closed, counted as a
 * read-only denial and, for the event lost, as no_working_record); let
 * through elsewhere, where no read-only rule reaches. */
static __always_inline int unjudged(struct dentry *d, struct dentry *d2)
{
	__u32 dev = d ? BPF_CORE_READ(d, d_sb, s_dev) : 0;
	__u32 dev2 = d2 ? BPF_CORE_READ(d2, d_sb, s_dev) : 0;
	if ((d && bpf_map_lookup_elem(&ro_devs, &dev)) || (d2 && bpf_map_lookup_elem(&ro_devs, &dev2))) {
		count_violation(RULE_READ_ONLY, ACTION_DENY);
		return -EPERM;
	}
	return 0;
}

/* file_event_start starts the event of a file hook of a watched task in
 * the task's working record; the objects are d and d2 (the second of a
 * rename or link, or NULL). NULL when the task is not watched (*ret 0) or
 * when its record cannot be made (*ret what unjudged answers). */
static __always_inline struct enforce_scratch *file_event_start(__u32 op, struct dentry *d, struct dentry *d2, int *ret)
{
	*ret = 0;
	__u64 cg = current_watched();
	if (!cg)
		return 0;
	struct enforce_scratch *sc = task_record();
	if (!sc) {
		*ret = unjudged(d, d2);
		return 0;
	}
	struct file_event *e = &sc->fe;
	fill_hdr_traced(&e->hdr, cg, KIND_FILE, SOURCE_LSM);
	e->op = op;
	e->flags = 0;
	e->mode = 0;
	e->owner_uid = 0;
	e->owner_gid = 0;
	e->dirfd = 0;
	e->dirfd2 = 0;
	e->path_kind = PATH_ABSOLUTE;
	e->path_len = 0;
	e->path2_kind = PATH_NONE;
	e->path2_len = 0;
	return sc;
}

/* What file_event_judge reports besides a refusal, always reported: the
 * file event, and a violation the rule audits but lets happen. */
#define REPORT_EVENT 1
#define REPORT_AUDIT 2
#define REPORT_ALL (REPORT_EVENT | REPORT_AUDIT)

/* file_event_end judges the write sc's event describes, to the object d
 * (and d2, the second object of a rename or link, or NULL), reports what
 * happened and returns the hook's answer. A write is refused when either
 * object belongs to a read-only root filesystem that does not allow it.
 * file_event_judge judges as ever and reports what report says. */
static __always_inline int file_event_judge(struct enforce_scratch *sc, struct dentry *d, struct dentry *d2, int report)
{
	struct file_event *e = &sc->fe;
	struct violation_event *v = &sc->ve;
	struct ro_judgement j1 = {}, j2 = {};
	ro_judge(sc, d, v->path, &j1);
	ro_judge(sc, d2, v->path2, &j2);
	struct ro_judgement *j = j2.action > j1.action ? &j2 : &j1;
	__u16 verdict = j->action;
	if (verdict != ACTION_NONE && ((report & REPORT_AUDIT) || verdict == ACTION_DENY)) {
		__u64 owner = j->owner;
		__u32 policy = j->policy;
		__u32 len1 = j1.len, len2 = j2.len;
		int on_root1 = j1.owner != 0, on_root2 = j2.owner != 0;
		v = violation_start(&sc->ve, e->hdr.cgroup_id, SOURCE_LSM, policy, RULE_READ_ONLY, verdict, 1);
		/* The objects' paths from their container's root, as judged;
		 * an object on no root keeps the path the event has. */
		v->op = e->op;
		v->path_kind = j1.cut ? PATH_TRUNCATED : PATH_ABSOLUTE;
		v->path_len = len1;
		if (!on_root1) {
			v->path_kind = e->path_kind;
			v->path_len = e->path_len;
			bpf_probe_read_kernel(v->path, PATH_LEN, e->path);
		}
		v->path2_kind = e->path2_kind;
		v->path2_len = len2;
		if (e->path2_kind != PATH_NONE && on_root2) /* from the root, as path */
			v->path2_kind = j2.cut ? PATH_TRUNCATED : PATH_ABSOLUTE;
		if (e->path2_kind != PATH_NONE && !on_root2) {
			v->path2_len = e->path2_len;
			bpf_probe_read_kernel(v->path2, PATH_LEN, e->path2);
		}
		violation_submit(v, owner);
		if (verdict == ACTION_DENY)
			return -EPERM; /* it did not happen: no file event */
	}
	if (report & REPORT_EVENT)
		file_event_output(e);
	return 0;
}

static __always_inline int file_event_end(struct enforce_scratch *sc, struct dentry *d, struct dentry *d2)
{
	return file_event_judge(sc, d, d2, REPORT_ALL);
}

/* kernel_work_report is what to report of a write the kernel makes under
 * one reported already (internal_file, overlay_work): its violations, not
 * its event. Its object is judged on its own, and may lie in another
 * root than the write it serves. */
static __always_inline int kernel_work_report(int kernel_work)
{
	return kernel_work ? REPORT_AUDIT : REPORT_ALL;
}

/* lsm_file_open reports opens for write, and judges them. A creation was
 * already reported, and judged, by path_mknod (may_o_create calls it for
 * every O_CREAT that creates); only O_TMPFILE creates without it. */
static __always_inline int lsm_file_open(struct file *file)
{
	__u32 fmode = BPF_CORE_READ(file, f_mode);
	__u32 fflags = BPF_CORE_READ(file, f_flags);
	__u32 op = FILE_OP_OPEN;
	int trunc = 0;
	if (fflags & LSM_O_TMPFILE) {
		op = FILE_OP_CREATE;
	} else if (fmode & FMODE_CREATED) {
		return 0;
	} else if ((fflags & LSM_O_TRUNC) &&
		   (BPF_CORE_READ(file, f_inode, i_mode) & LSM_S_IFMT) == LSM_S_IFREG) {
		/* Only regular files are truncated on open; the inode is read
		 * for O_TRUNC opens only, not on every open of the node. */
		op = FILE_OP_TRUNCATE;
		trunc = 1;
	} else if (!(fmode & FMODE_WRITE)) {
		return 0;
	}
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	int ret;
	struct enforce_scratch *sc = file_event_start(op, d, 0, &ret);
	if (!sc)
		return ret;
	struct file_event *e = &sc->fe;
	e->flags = fflags;
	e->path_len = d_path_child(&sc->ps, (struct path *)&file->f_path, 0, e->path);
	e->path_kind = path_kind_of(&sc->ps, PATH_ABSOLUTE);
	/* Judged whoever opens it; no event when the kernel opens it under a
	 * file reported already. */
	ret = file_event_judge(sc, d, 0, kernel_work_report(internal_file(file) || overlay_work()));
	if (trunc && ret == 0) {
		__u64 id = bpf_get_current_pid_tgid();
		__u64 dv = (__u64)d;
		bpf_map_update_elem(&open_truncs, &id, &dv, BPF_ANY);
	}
	return ret;
}

/* truncate_of_open reports whether this truncation of dentry d is the one
 * of an O_TRUNC open that file_open reported, and forgets that open. It
 * only spares the event: the truncation is judged all the same, for an
 * entry left by an open that failed after file_open may name a freed
 * dentry whose address another one now has. */
static __always_inline int truncate_of_open(struct dentry *d)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 *opened = bpf_map_lookup_elem(&open_truncs, &id);
	if (!opened)
		return 0;
	int same = *opened == (__u64)d;
	bpf_map_delete_elem(&open_truncs, &id);
	return same;
}

/* path_op_as judges an operation on dir/child (child may be NULL: dir is
 * the object), and reports what report says; path_op everything. */
static __always_inline int path_op_as(__u32 op, const struct path *dir, struct dentry *child, __u32 mode, int report)
{
	struct dentry *d = child ? child : BPF_CORE_READ(dir, dentry);
	int ret;
	struct enforce_scratch *sc = file_event_start(op, d, 0, &ret);
	if (!sc)
		return ret;
	struct file_event *e = &sc->fe;
	e->mode = mode;
	e->path_len = d_path_child(&sc->ps, (struct path *)dir, child, e->path);
	e->path_kind = path_kind_of(&sc->ps, PATH_ABSOLUTE);
	return file_event_judge(sc, d, 0, report);
}

static __always_inline int path_op(__u32 op, const struct path *dir, struct dentry *child, __u32 mode)
{
	return path_op_as(op, dir, child, mode, REPORT_ALL);
}

static __always_inline int lsm_path_rename(const struct path *old_dir, struct dentry *old_dentry,
					   const struct path *new_dir, struct dentry *new_dentry, __u32 flags)
{
	int ret;
	struct enforce_scratch *sc = file_event_start(FILE_OP_RENAME, old_dentry, new_dentry, &ret);
	if (!sc)
		return ret;
	struct file_event *e = &sc->fe;
	e->flags = flags;
	e->path_len = d_path_child(&sc->ps, (struct path *)old_dir, old_dentry, e->path);
	e->path_kind = path_kind_of(&sc->ps, PATH_ABSOLUTE);
	e->path2_len = d_path_child(&sc->ps, (struct path *)new_dir, new_dentry, e->path2);
	e->path2_kind = path_kind_of(&sc->ps, PATH_ABSOLUTE);
	return file_event_end(sc, old_dentry, new_dentry);
}

/* link: path is the new name; path2 the existing file, inside its filesystem. */
static __always_inline int lsm_path_link(struct dentry *old_dentry, const struct path *new_dir, struct dentry *new_dentry)
{
	int ret;
	struct enforce_scratch *sc = file_event_start(FILE_OP_LINK, new_dentry, old_dentry, &ret);
	if (!sc)
		return ret;
	struct file_event *e = &sc->fe;
	e->path_len = d_path_child(&sc->ps, (struct path *)new_dir, new_dentry, e->path);
	e->path_kind = path_kind_of(&sc->ps, PATH_ABSOLUTE);
	e->path2_len = dentry_path(&sc->ps, old_dentry, e->path2);
	e->path2_kind = path_kind_of(&sc->ps, PATH_FS);
	return file_event_end(sc, new_dentry, old_dentry);
}

static __always_inline int lsm_path_symlink(const struct path *dir, struct dentry *dentry, const char *old_name)
{
	int ret;
	struct enforce_scratch *sc = file_event_start(FILE_OP_SYMLINK, dentry, 0, &ret);
	if (!sc)
		return ret;
	struct file_event *e = &sc->fe;
	e->path_len = d_path_child(&sc->ps, (struct path *)dir, dentry, e->path);
	e->path_kind = path_kind_of(&sc->ps, PATH_ABSOLUTE);
	long n = bpf_probe_read_kernel_str(e->path2, PATH_LEN, old_name);
	e->path2_kind = PATH_RELATIVE; /* a symlink target is stored as given */
	e->path2_len = n > 0 ? n - 1 : 0;
	return file_event_end(sc, dentry, 0);
}

static __always_inline int lsm_path_chown(const struct path *path, __u32 uid, __u32 gid)
{
	struct dentry *d = BPF_CORE_READ(path, dentry);
	int ret;
	struct enforce_scratch *sc = file_event_start(FILE_OP_CHOWN, d, 0, &ret);
	if (!sc)
		return ret;
	struct file_event *e = &sc->fe;
	e->owner_uid = uid;
	e->owner_gid = gid;
	e->path_len = d_path_child(&sc->ps, (struct path *)path, 0, e->path);
	e->path_kind = path_kind_of(&sc->ps, PATH_ABSOLUTE);
	return file_event_end(sc, d, 0);
}

/* dentry_op reports an operation known only by its dentry; of one
 * overlayfs does on its layers, under a write to the overlay reported
 * already, only its violations. */
static __always_inline int dentry_op(__u32 op, struct dentry *d, __u32 flags)
{
	int ret;
	struct enforce_scratch *sc = file_event_start(op, d, 0, &ret);
	if (!sc)
		return ret;
	struct file_event *e = &sc->fe;
	e->flags = flags;
	e->path_len = dentry_path(&sc->ps, d, e->path);
	e->path_kind = path_kind_of(&sc->ps, PATH_FS);
	return file_event_judge(sc, d, 0, kernel_work_report(overlay_work()));
}

/* in_ioctl_syscall reports whether the current syscall is an ioctl: 16 on
 * x86-64, 514 with the x32 bit on x32, 54 in an ia32 syscall. */
static __always_inline int in_ioctl_syscall(void)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	long nr = BPF_CORE_READ(regs, orig_ax);
	if (in_compat_syscall_traced())
		return nr == 54;
	return nr == 16 || nr == (0x40000000L | 514);
}

/* TOLD_IOCTL marks, in open_truncs, the key of a thread whose ioctl setting
 * a file's attribute flags file_ioctl has just judged and reported (with the
 * file's dentry); an O_TRUNC open's key, the bare pid_tgid, never has it
 * (a tgid is below 2^22). */
#define TOLD_IOCTL (1ULL << 63)

/* ioctl_sets_attributes: the ioctls that reach inode_file_setattr (6.17+)
 * through vfs_fileattr_set, in their 64- and 32-bit forms. */
static __always_inline int ioctl_sets_attributes(__u32 cmd)
{
	return cmd == 0x40086602 /* FS_IOC_SETFLAGS */ || cmd == 0x40046602 /* FS_IOC32_SETFLAGS */ ||
	       cmd == 0x401c5820 /* FS_IOC_FSSETXATTR */;
}

/* attributes_told reports whether this change of dentry d's attribute
 * flags is the one of the ioctl file_ioctl reported for this thread, and
 * forgets that ioctl. Both must hold: the same object, and the thread
 * still in an ioctl, so that an entry left by an ioctl that failed after
 * file_ioctl cannot hide a later file_setattr of the same file. */
static __always_inline int attributes_told(struct dentry *d)
{
	__u64 id = bpf_get_current_pid_tgid() | TOLD_IOCTL;
	__u64 *told = bpf_map_lookup_elem(&open_truncs, &id);
	if (!told)
		return 0;
	int same = *told == (__u64)d;
	bpf_map_delete_elem(&open_truncs, &id);
	return same && in_ioctl_syscall();
}

/* lsm_inode_file_setattr judges a change of the attributes chattr and
 * FS_IOC_FSSETXATTR set, by the object, and reports the file_setattr
 * syscall's (6.17+) as op fileattr. The two ioctls come here too, after
 * file_ioctl judged and reported them (attributes_told): then only a
 * refusal is reported, so that nothing is told twice; an object
 * file_ioctl did not report (a special file, overlayfs's layer below a
 * chattr) is reported as ever. */
static __always_inline int lsm_inode_file_setattr(struct dentry *d)
{
	int ret;
	struct enforce_scratch *sc = file_event_start(FILE_OP_FILEATTR, d, 0, &ret);
	if (!sc)
		return ret;
	struct file_event *e = &sc->fe;
	e->path_len = dentry_path(&sc->ps, d, e->path);
	e->path_kind = path_kind_of(&sc->ps, PATH_FS);
	return file_event_judge(sc, d, 0, attributes_told(d) ? 0 : kernel_work_report(overlay_work()));
}

/* lsm_file_ioctl judges and reports an ioctl on a regular file or a
 * directory that is not known to leave it as it was (harmless_ioctl), as
 * op ioctl with the command in flags. overlayfs asks this hook again
 * itself, for the real file it changes under one judged already (its
 * ovl_security_fileattr): that file is on overlayfs's private mount of its
 * layer, which judged_ioctl_file leaves out. */
static __always_inline int lsm_file_ioctl(struct file *file, __u32 cmd)
{
	if (ioctl_sets_attributes(cmd)) {
		/* Whatever this one does, no earlier ioctl's record may speak
		 * for it: one that failed after file_ioctl left its own. */
		__u64 id = bpf_get_current_pid_tgid() | TOLD_IOCTL;
		bpf_map_delete_elem(&open_truncs, &id);
	}
	if (harmless_ioctl(cmd) || !judged_ioctl_file(file))
		return 0;
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	int ret;
	struct enforce_scratch *sc = file_event_start(FILE_OP_IOCTL, d, 0, &ret);
	if (!sc)
		return ret;
	struct file_event *e = &sc->fe;
	e->flags = cmd;
	e->path_len = file_path(&sc->ps, file, e->path);
	e->path_kind = path_kind_of(&sc->ps, PATH_ABSOLUTE);
	int report = kernel_work_report(internal_file(file) || overlay_work());
	ret = file_event_judge(sc, d, 0, report);
	if (ret == 0 && (report & REPORT_EVENT) && ioctl_sets_attributes(cmd)) {
		__u64 id = bpf_get_current_pid_tgid() | TOLD_IOCTL;
		__u64 dv = (__u64)d;
		bpf_map_update_elem(&open_truncs, &id, &dv, BPF_ANY);
	}
	return ret;
}

/* path_mknod also sees every creation of a regular file (open with O_CREAT,
 * creat, mknod of S_IFREG or of type 0): those are reported as create. */
static __always_inline int lsm_path_mknod(const struct path *dir, struct dentry *dentry, __u32 mode)
{
	__u32 type = mode & LSM_S_IFMT;
	__u32 op = (type == 0 || type == LSM_S_IFREG) ? FILE_OP_CREATE : FILE_OP_MKNOD;
	return path_op(op, dir, dentry, mode);
}

/* inode_setattr is the only hook on the utimes route. Mode, owner and size
 * changes arrive here too but are reported by their path hooks already. */
static __always_inline int lsm_inode_setattr(struct dentry *d, struct iattr *attr)
{
	__u32 valid = BPF_CORE_READ(attr, ia_valid);
	if (!(valid & (ATTR_ATIME | ATTR_MTIME)) || (valid & (ATTR_SIZE | ATTR_MODE | ATTR_UID | ATTR_GID)))
		return 0;
	return dentry_op(FILE_OP_UTIMES, d, valid);
}

/* path_truncate is the truncate route, and up to 6.1 also ftruncate and
 * O_TRUNC opens. */
static __always_inline int lsm_path_truncate(const struct path *path)
{
	if (!current_watched())
		return 0;
	int reported = truncate_of_open(BPF_CORE_READ(path, dentry));
	return path_op_as(FILE_OP_TRUNCATE, path, 0, 0, reported ? 0 : REPORT_ALL);
}

/* file_truncate (6.2+) is the ftruncate and O_TRUNC route on newer kernels;
 * it is not among the hooks where bpf_d_path is allowed, so walk the path. */
static __always_inline int lsm_file_truncate(struct file *file)
{
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	if (!current_watched())
		return 0;
	int reported = truncate_of_open(d);
	int ret;
	struct enforce_scratch *sc = file_event_start(FILE_OP_TRUNCATE, d, 0, &ret);
	if (!sc)
		return ret;
	struct file_event *e = &sc->fe;
	e->path_len = file_path(&sc->ps, file, e->path);
	e->path_kind = path_kind_of(&sc->ps, PATH_ABSOLUTE);
	return file_event_judge(sc, d, 0, reported ? 0 : REPORT_ALL);
}
