/* The raw syscall-entry tracepoint: per-cgroup syscall counts on every tier,
 * and, on the cgroup-only tier where no LSM hook is available, file writes
 * observed from the arguments of the syscalls that change files. These are
 * attempts: the syscall may still fail. Writes that bypass syscalls
 * (io_uring) are only seen on the full tier.
 *
 * Syscall numbers depend on the entry: a 64-bit process uses the x86-64
 * table, a 32-bit one (int 0x80, sysenter, or a 64-bit process issuing int
 * 0x80) the ia32 table, with its arguments in other registers. The kernel
 * marks the task TS_COMPAT for the duration of an ia32 syscall; that is
 * how they are told apart here. x32 syscalls carry __X32_SYSCALL_BIT and
 * otherwise use x86-64 numbers and registers. */
#pragma once
#include "path.h"

#define O_WRONLY 01
#define O_RDWR 02
#define O_CREAT 0100
#define O_TRUNC 01000
#define O___TMPFILE 020000000
#define AT_FDCWD -100
#define AT_REMOVEDIR 0x200
#define AT_SYMLINK_NOFOLLOW 0x100
#define NO_RESOLVE -2
#define X32_SYSCALL_BIT 0x40000000
#define SYSCALL_KEY_IA32 0x80000000 /* syscall_key.nr of an ia32 syscall */

/* Where a syscall's arguments live, decoded once per syscall number. */
struct fileop_args {
	__u32 op;
	__s8 path;   /* argument index of the path, -1 none */
	__s8 dirfd;  /* argument index of the dirfd, -1 means AT_FDCWD, NO_RESOLVE a literal string */
	__s8 path2;
	__s8 dirfd2;
	__s8 flags;
	__s8 mode;
	__s8 fd;     /* fd-only operations: argument index of the fd */
	__s8 owner;  /* chown: index of uid, gid follows */
	__s8 owner16; /* ia32 chown16 family: 16-bit ids */
	__s8 handle; /* open_by_handle_at: the object is a file handle */
	__s8 how;    /* openat2: the flags are in the struct open_how of this argument */
	__s8 nofollow; /* lchown, lsetxattr, lremovexattr: act on a final symlink itself */
	__s8 _pad[2];
};

#define A(op_, p, d, p2, d2, f, m, fd_, o) \
	(struct fileop_args){ .op = op_, .path = p, .dirfd = d, .path2 = p2, .dirfd2 = d2, .flags = f, .mode = m, .fd = fd_, .owner = o }

static __always_inline int fileop_for(long nr, struct fileop_args *a)
{
	switch (nr) {
	case 2:   *a = A(FILE_OP_OPEN, 0, -1, -1, -1, 1, 2, -1, -1); break;      /* open */
	case 85:  *a = A(FILE_OP_CREATE, 0, -1, -1, -1, -1, 1, -1, -1); break;   /* creat */
	case 257: *a = A(FILE_OP_OPEN, 1, 0, -1, -1, 2, 3, -1, -1); break;       /* openat */
	case 437: *a = A(FILE_OP_OPEN, 1, 0, -1, -1, -1, -1, -1, -1); a->how = 2; break; /* openat2 */
	case 76:  *a = A(FILE_OP_TRUNCATE, 0, -1, -1, -1, -1, -1, -1, -1); break; /* truncate */
	case 77:  *a = A(FILE_OP_TRUNCATE, -1, -1, -1, -1, -1, -1, 0, -1); break; /* ftruncate */
	case 285: *a = A(FILE_OP_FALLOCATE, -1, -1, -1, -1, 1, -1, 0, -1); break; /* fallocate */
	case 87:  *a = A(FILE_OP_UNLINK, 0, -1, -1, -1, -1, -1, -1, -1); break;  /* unlink */
	case 263: *a = A(FILE_OP_UNLINK, 1, 0, -1, -1, 2, -1, -1, -1); break;    /* unlinkat */
	case 82:  *a = A(FILE_OP_RENAME, 0, -1, 1, -1, -1, -1, -1, -1); break;   /* rename */
	case 264: *a = A(FILE_OP_RENAME, 1, 0, 3, 2, -1, -1, -1, -1); break;     /* renameat */
	case 316: *a = A(FILE_OP_RENAME, 1, 0, 3, 2, 4, -1, -1, -1); break;      /* renameat2 */
	case 86:  *a = A(FILE_OP_LINK, 1, -1, 0, -1, -1, -1, -1, -1); break;     /* link: path is the new name */
	case 265: *a = A(FILE_OP_LINK, 3, 2, 1, 0, 4, -1, -1, -1); break;        /* linkat */
	case 88:  *a = A(FILE_OP_SYMLINK, 1, -1, 0, NO_RESOLVE, -1, -1, -1, -1); break;  /* symlink: path is the link */
	case 266: *a = A(FILE_OP_SYMLINK, 2, 1, 0, NO_RESOLVE, -1, -1, -1, -1); break;   /* symlinkat */
	case 83:  *a = A(FILE_OP_MKDIR, 0, -1, -1, -1, -1, 1, -1, -1); break;    /* mkdir */
	case 258: *a = A(FILE_OP_MKDIR, 1, 0, -1, -1, -1, 2, -1, -1); break;     /* mkdirat */
	case 84:  *a = A(FILE_OP_RMDIR, 0, -1, -1, -1, -1, -1, -1, -1); break;   /* rmdir */
	case 133: *a = A(FILE_OP_MKNOD, 0, -1, -1, -1, -1, 1, -1, -1); break;    /* mknod */
	case 259: *a = A(FILE_OP_MKNOD, 1, 0, -1, -1, -1, 2, -1, -1); break;     /* mknodat */
	case 90:  *a = A(FILE_OP_CHMOD, 0, -1, -1, -1, -1, 1, -1, -1); break;    /* chmod */
	case 91:  *a = A(FILE_OP_CHMOD, -1, -1, -1, -1, -1, 1, 0, -1); break;    /* fchmod */
	case 268: *a = A(FILE_OP_CHMOD, 1, 0, -1, -1, -1, 2, -1, -1); break;     /* fchmodat */
	case 452: *a = A(FILE_OP_CHMOD, 1, 0, -1, -1, 3, 2, -1, -1); break;      /* fchmodat2 */
	case 92:  *a = A(FILE_OP_CHOWN, 0, -1, -1, -1, -1, -1, -1, 1); break;    /* chown */
	case 94:  *a = A(FILE_OP_CHOWN, 0, -1, -1, -1, -1, -1, -1, 1); a->nofollow = 1; break; /* lchown */
	case 93:  *a = A(FILE_OP_CHOWN, -1, -1, -1, -1, -1, -1, 0, 1); break;    /* fchown */
	case 260: *a = A(FILE_OP_CHOWN, 1, 0, -1, -1, 4, -1, -1, 2); break;      /* fchownat */
	case 188: *a = A(FILE_OP_SETXATTR, 0, -1, -1, -1, -1, -1, -1, -1); break; /* setxattr */
	case 189: *a = A(FILE_OP_SETXATTR, 0, -1, -1, -1, -1, -1, -1, -1); a->nofollow = 1; break; /* lsetxattr */
	case 190: *a = A(FILE_OP_SETXATTR, -1, -1, -1, -1, -1, -1, 0, -1); break; /* fsetxattr */
	case 463: *a = A(FILE_OP_SETXATTR, 1, 0, -1, -1, 2, -1, -1, -1); break;  /* setxattrat */
	case 197: *a = A(FILE_OP_REMOVEXATTR, 0, -1, -1, -1, -1, -1, -1, -1); break; /* removexattr */
	case 198: *a = A(FILE_OP_REMOVEXATTR, 0, -1, -1, -1, -1, -1, -1, -1); a->nofollow = 1; break; /* lremovexattr */
	case 199: *a = A(FILE_OP_REMOVEXATTR, -1, -1, -1, -1, -1, -1, 0, -1); break; /* fremovexattr */
	case 466: *a = A(FILE_OP_REMOVEXATTR, 1, 0, -1, -1, 2, -1, -1, -1); break; /* removexattrat */
	case 132: *a = A(FILE_OP_UTIMES, 0, -1, -1, -1, -1, -1, -1, -1); break;  /* utime */
	case 235: *a = A(FILE_OP_UTIMES, 0, -1, -1, -1, -1, -1, -1, -1); break;  /* utimes */
	case 261: *a = A(FILE_OP_UTIMES, 1, 0, -1, -1, -1, -1, -1, -1); break;   /* futimesat */
	case 280: *a = A(FILE_OP_UTIMES, 1, 0, -1, -1, 3, -1, -1, -1); break;    /* utimensat */
	case 469: *a = A(FILE_OP_FILEATTR, 1, 0, -1, -1, 4, -1, -1, -1); break;  /* file_setattr (6.17+) */
	case 304: *a = A(FILE_OP_OPEN, -1, -1, -1, -1, 2, -1, 0, -1); a->handle = 1; break; /* open_by_handle_at */
	case 16:  *a = A(FILE_OP_IOCTL, -1, -1, -1, -1, 1, -1, 0, -1); break;    /* ioctl: flags is the command */
	case 514: *a = A(FILE_OP_IOCTL, -1, -1, -1, -1, 1, -1, 0, -1); break;    /* x32's ioctl (no x86-64 syscall has 514) */
	default:
		return 0;
	}
	return 1;
}

/* fileop_for_ia32 is fileop_for for the ia32 table (arch/x86/entry/syscalls/
 * syscall_32.tbl). Numbers from 403 on are shared by every architecture. */
static __always_inline int fileop_for_ia32(long nr, struct fileop_args *a)
{
	switch (nr) {
	case 5:   *a = A(FILE_OP_OPEN, 0, -1, -1, -1, 1, 2, -1, -1); break;      /* open */
	case 8:   *a = A(FILE_OP_CREATE, 0, -1, -1, -1, -1, 1, -1, -1); break;   /* creat */
	case 295: *a = A(FILE_OP_OPEN, 1, 0, -1, -1, 2, 3, -1, -1); break;       /* openat */
	case 437: *a = A(FILE_OP_OPEN, 1, 0, -1, -1, -1, -1, -1, -1); a->how = 2; break; /* openat2 */
	case 342: *a = A(FILE_OP_OPEN, -1, -1, -1, -1, 2, -1, 0, -1); a->handle = 1; break; /* open_by_handle_at */
	case 54:  *a = A(FILE_OP_IOCTL, -1, -1, -1, -1, 1, -1, 0, -1); break;    /* ioctl */
	case 92: case 193:
		  *a = A(FILE_OP_TRUNCATE, 0, -1, -1, -1, -1, -1, -1, -1); break; /* truncate, truncate64 */
	case 93: case 194:
		  *a = A(FILE_OP_TRUNCATE, -1, -1, -1, -1, -1, -1, 0, -1); break; /* ftruncate, ftruncate64 */
	case 324: *a = A(FILE_OP_FALLOCATE, -1, -1, -1, -1, 1, -1, 0, -1); break; /* fallocate */
	case 10:  *a = A(FILE_OP_UNLINK, 0, -1, -1, -1, -1, -1, -1, -1); break;  /* unlink */
	case 301: *a = A(FILE_OP_UNLINK, 1, 0, -1, -1, 2, -1, -1, -1); break;    /* unlinkat */
	case 38:  *a = A(FILE_OP_RENAME, 0, -1, 1, -1, -1, -1, -1, -1); break;   /* rename */
	case 302: *a = A(FILE_OP_RENAME, 1, 0, 3, 2, -1, -1, -1, -1); break;     /* renameat */
	case 353: *a = A(FILE_OP_RENAME, 1, 0, 3, 2, 4, -1, -1, -1); break;      /* renameat2 */
	case 9:   *a = A(FILE_OP_LINK, 1, -1, 0, -1, -1, -1, -1, -1); break;     /* link */
	case 303: *a = A(FILE_OP_LINK, 3, 2, 1, 0, 4, -1, -1, -1); break;        /* linkat */
	case 83:  *a = A(FILE_OP_SYMLINK, 1, -1, 0, NO_RESOLVE, -1, -1, -1, -1); break;  /* symlink */
	case 304: *a = A(FILE_OP_SYMLINK, 2, 1, 0, NO_RESOLVE, -1, -1, -1, -1); break;   /* symlinkat */
	case 39:  *a = A(FILE_OP_MKDIR, 0, -1, -1, -1, -1, 1, -1, -1); break;    /* mkdir */
	case 296: *a = A(FILE_OP_MKDIR, 1, 0, -1, -1, -1, 2, -1, -1); break;     /* mkdirat */
	case 40:  *a = A(FILE_OP_RMDIR, 0, -1, -1, -1, -1, -1, -1, -1); break;   /* rmdir */
	case 14:  *a = A(FILE_OP_MKNOD, 0, -1, -1, -1, -1, 1, -1, -1); break;    /* mknod */
	case 297: *a = A(FILE_OP_MKNOD, 1, 0, -1, -1, -1, 2, -1, -1); break;     /* mknodat */
	case 15:  *a = A(FILE_OP_CHMOD, 0, -1, -1, -1, -1, 1, -1, -1); break;    /* chmod */
	case 94:  *a = A(FILE_OP_CHMOD, -1, -1, -1, -1, -1, 1, 0, -1); break;    /* fchmod */
	case 306: *a = A(FILE_OP_CHMOD, 1, 0, -1, -1, -1, 2, -1, -1); break;     /* fchmodat */
	case 452: *a = A(FILE_OP_CHMOD, 1, 0, -1, -1, 3, 2, -1, -1); break;      /* fchmodat2 */
	case 16:  *a = A(FILE_OP_CHOWN, 0, -1, -1, -1, -1, -1, -1, 1); a->owner16 = 1; a->nofollow = 1; break; /* lchown16 */
	case 182: *a = A(FILE_OP_CHOWN, 0, -1, -1, -1, -1, -1, -1, 1); a->owner16 = 1; break; /* chown16 */
	case 95:  *a = A(FILE_OP_CHOWN, -1, -1, -1, -1, -1, -1, 0, 1); a->owner16 = 1; break; /* fchown16 */
	case 198: *a = A(FILE_OP_CHOWN, 0, -1, -1, -1, -1, -1, -1, 1); a->nofollow = 1; break; /* lchown32 */
	case 212: *a = A(FILE_OP_CHOWN, 0, -1, -1, -1, -1, -1, -1, 1); break;    /* chown32 */
	case 207: *a = A(FILE_OP_CHOWN, -1, -1, -1, -1, -1, -1, 0, 1); break;    /* fchown32 */
	case 298: *a = A(FILE_OP_CHOWN, 1, 0, -1, -1, 4, -1, -1, 2); break;      /* fchownat */
	case 226: *a = A(FILE_OP_SETXATTR, 0, -1, -1, -1, -1, -1, -1, -1); break; /* setxattr */
	case 227: *a = A(FILE_OP_SETXATTR, 0, -1, -1, -1, -1, -1, -1, -1); a->nofollow = 1; break; /* lsetxattr */
	case 228: *a = A(FILE_OP_SETXATTR, -1, -1, -1, -1, -1, -1, 0, -1); break; /* fsetxattr */
	case 463: *a = A(FILE_OP_SETXATTR, 1, 0, -1, -1, 2, -1, -1, -1); break;  /* setxattrat */
	case 235: *a = A(FILE_OP_REMOVEXATTR, 0, -1, -1, -1, -1, -1, -1, -1); break; /* removexattr */
	case 236: *a = A(FILE_OP_REMOVEXATTR, 0, -1, -1, -1, -1, -1, -1, -1); a->nofollow = 1; break; /* lremovexattr */
	case 237: *a = A(FILE_OP_REMOVEXATTR, -1, -1, -1, -1, -1, -1, 0, -1); break; /* fremovexattr */
	case 466: *a = A(FILE_OP_REMOVEXATTR, 1, 0, -1, -1, 2, -1, -1, -1); break; /* removexattrat */
	case 30:  *a = A(FILE_OP_UTIMES, 0, -1, -1, -1, -1, -1, -1, -1); break;  /* utime */
	case 271: *a = A(FILE_OP_UTIMES, 0, -1, -1, -1, -1, -1, -1, -1); break;  /* utimes */
	case 299: *a = A(FILE_OP_UTIMES, 1, 0, -1, -1, -1, -1, -1, -1); break;   /* futimesat */
	case 469: *a = A(FILE_OP_FILEATTR, 1, 0, -1, -1, 4, -1, -1, -1); break;  /* file_setattr (6.17+) */
	case 320: case 412:
		  *a = A(FILE_OP_UTIMES, 1, 0, -1, -1, 3, -1, -1, -1); break;    /* utimensat, utimensat_time64 */
	default:
		return 0;
	}
	return 1;
}

/* The first five arguments of a syscall, read once: for ia32 from ebx,
 * ecx, edx, esi and edi, 32 bits wide. */
struct sc_args {
	unsigned long v[5];
};

/* regs is the tracepoint's own argument, typed by BTF: its fields are read
 * directly (the verifier makes each a guarded load), not through a helper
 * call each. x86-64 passes the fourth argument in r10, not rcx. */
static __always_inline void read_sc_args(struct pt_regs *regs, int compat, struct sc_args *s)
{
	if (compat) {
		s->v[0] = (__u32)regs->bx;
		s->v[1] = (__u32)regs->cx;
		s->v[2] = (__u32)regs->dx;
		s->v[3] = (__u32)regs->si;
		s->v[4] = (__u32)regs->di;
		return;
	}
	s->v[0] = regs->di;
	s->v[1] = regs->si;
	s->v[2] = regs->dx;
	s->v[3] = regs->r10;
	s->v[4] = regs->r8;
}

static __always_inline unsigned long sc_arg(const struct sc_args *s, int i)
{
	switch (i) {
	case 0: return s->v[0];
	case 1: return s->v[1];
	case 2: return s->v[2];
	case 3: return s->v[3];
	case 4: return s->v[4];
	}
	return 0;
}

/* absolute_path gives an absolute path the process passed (already in
 * buf) as the kernel will resolve it: from the process's root, which after
 * a chroot is not its mount namespace's. The path then starts with where
 * that root is in the namespace, as every path in events does. */
static __always_inline __u16 absolute_path(struct path_scratch *s, const char *p, char *buf, __u32 *len)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct path root = {};
	BPF_CORE_READ_INTO(&root, task, fs, root); /* the task's fs once, its root whole */
	__u32 off = path_walk(s, (__u64)root.dentry, (__u64)root.mnt);
	/* The root is "/" of the namespace, as nearly every process's is
	 * (mounted on the root of another mount, as pivot_root and an
	 * initramfs's switch_root leave it, is the same): the path as given,
	 * already in buf. */
	if (s->cut) /* the root itself could not be placed */
		return PATH_TRUNCATED;
	if (off <= 1)
		return PATH_ABSOLUTE;
	*len = copy_out(s, path_append_user(s, off, (__u64)(p + 1)), buf);
	return path_kind_of(s, PATH_ABSOLUTE);
}

/* read_user_path fills one path field and returns its kind. Relative paths
 * and bare descriptors are resolved here in the kernel, against the cwd or
 * the directory descriptor, while the process and its descriptors surely
 * still exist. */
static __always_inline __u16 read_user_path(struct path_scratch *s, const struct sc_args *args, int pi, int di, char *buf, __u32 *len, __s32 *dirfd)
{
	*len = 0;
	buf[0] = 0; /* the record ends at this NUL when nothing is read into it */
	*dirfd = di >= 0 ? (__s32)sc_arg(args, di) : AT_FDCWD;
	const char *p = pi >= 0 ? (const char *)sc_arg(args, pi) : 0;
	char next = 0; /* the byte after what buf holds: the path is longer */
	if (p) {
		long n = bpf_probe_read_user_str(buf, PATH_LEN, p);
		if (n <= 0)
			return PATH_NONE;
		*len = n - 1;
		if (n == PATH_LEN)
			bpf_probe_read_user(&next, 1, p + PATH_LEN - 1);
		if (buf[0] == '/') {
			__u16 kind = absolute_path(s, p, buf, len);
			return next ? PATH_TRUNCATED : kind;
		}
		if (di == NO_RESOLVE) /* a symlink's contents, stored as given */
			return PATH_RELATIVE;
	}
	struct dentry *d;
	struct vfsmount *m;
	if (*dirfd == AT_FDCWD) {
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		d = BPF_CORE_READ(task, fs, pwd.dentry);
		m = BPF_CORE_READ(task, fs, pwd.mnt);
	} else {
		struct file *f = fd_file(*dirfd);
		if (!f)
			return p ? (next ? PATH_TRUNCATED : PATH_RELATIVE) : PATH_FD;
		d = BPF_CORE_READ(f, f_path.dentry);
		m = BPF_CORE_READ(f, f_path.mnt);
	}
	if (!p || *len == 0) /* the descriptor itself (NULL path, AT_EMPTY_PATH) */
		*len = copy_out(s, path_walk(s, (__u64)d, (__u64)m), buf);
	else
		*len = dir_then_user(s, d, m, p, buf);
	return path_kind_of(s, PATH_ABSOLUTE);
}

static __always_inline int emit_syscall_fileop(struct pt_regs *regs, long nr, __u64 cg, int compat)
{
	struct fileop_args t = {}, a;
	if (nr == 514) /* x32's ioctl only with its bit; a bare 514 is ENOSYS */
		return 0;
	int found = compat ? fileop_for_ia32(nr, &t) : fileop_for(nr & ~X32_SYSCALL_BIT, &t);
	if (!found)
		return 0;
	/* Copied through a helper, the layout is no longer a constant the
	 * verifier follows case by case: it checks the rest once. */
	bpf_probe_read_kernel(&a, sizeof(a), &t);
	struct sc_args args;
	read_sc_args(regs, compat, &args);

	__u32 flags = a.flags >= 0 ? (__u32)sc_arg(&args, a.flags) : 0;
	/* The l- variants take no flags: they say, as the -at ones would,
	 * that the object is a final symlink itself, not what it names. */
	if (a.nofollow)
		flags |= AT_SYMLINK_NOFOLLOW;
	__u32 op = a.op;
	if (a.how) { /* openat2 */
		struct open_how how = {};
		bpf_probe_read_user(&how, sizeof(how), (void *)sc_arg(&args, a.how));
		flags = (__u32)how.flags;
	}
	if (op == FILE_OP_OPEN) {
		if (!(flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O___TMPFILE)))
			return 0; /* read-only open: not a write */
		if (a.handle) /* O_CREAT means nothing for a handle: the file exists */
			op = (flags & O_TRUNC) ? FILE_OP_TRUNCATE : FILE_OP_OPEN;
		else if (flags & (O_CREAT | O___TMPFILE))
			op = FILE_OP_CREATE;
		else if (flags & O_TRUNC)
			op = FILE_OP_TRUNCATE;
	}
	if (op == FILE_OP_UNLINK && (flags & AT_REMOVEDIR))
		op = FILE_OP_RMDIR;
	if (op == FILE_OP_IOCTL) {
		/* Nearly every ioctl asks, or is on a device, socket or pipe. */
		if (harmless_ioctl(flags))
			return 0;
		struct file *f = fd_file((int)sc_arg(&args, a.fd));
		if (!f || !judged_ioctl_file(f))
			return 0;
	}

	/* Built in a working record and copied to the ring only as long as
	 * its paths: reserving the whole struct would take PATH_LEN twice.
	 * The task's own record: with none the event is lost, counted
	 * (no_working_record). */
	struct enforce_scratch *sc = task_record();
	if (!sc)
		return 0;
	struct file_event *e = &sc->fe;
	fill_hdr_traced(&e->hdr, cg, KIND_FILE, SOURCE_TRACEPOINT);
	e->op = op;
	e->flags = flags;
	e->mode = a.mode >= 0 ? (__u32)sc_arg(&args, a.mode) : 0;
	e->owner_uid = a.owner >= 0 ? (__u32)sc_arg(&args, a.owner) : 0;
	e->owner_gid = a.owner >= 0 ? (__u32)sc_arg(&args, a.owner + 1) : 0;
	if (a.owner16) { /* 16-bit ids; (u16)-1 leaves the id unchanged, like -1 */
		e->owner_uid = (__u16)e->owner_uid == 0xffff ? 0xffffffff : (__u16)e->owner_uid;
		e->owner_gid = (__u16)e->owner_gid == 0xffff ? 0xffffffff : (__u16)e->owner_gid;
	}
	e->path2_kind = PATH_NONE;
	e->path2_len = 0;
	e->dirfd2 = 0;
	if (a.fd >= 0) /* the object is an open descriptor */
		e->path_kind = read_user_path(&sc->ps, &args, -1, a.fd, e->path, &e->path_len, &e->dirfd);
	else
		e->path_kind = read_user_path(&sc->ps, &args, a.path, a.dirfd, e->path, &e->path_len, &e->dirfd);
	if (a.handle && e->path_kind != PATH_TRUNCATED) /* the path is the mount's: the object is a handle below it */
		e->path_kind = PATH_HANDLE;
	if (a.path2 >= 0)
		e->path2_kind = read_user_path(&sc->ps, &args, a.path2, a.dirfd2, e->path2, &e->path2_len, &e->dirfd2);
	file_event_output(e);
	return 0;
}

/* Syscall numbers are counted below SYSCALL_NR_MAX; any other (invalid:
 * the kernel refuses it with ENOSYS) under SYSCALL_NR_INVALID, so that a
 * container can hold at most 2 * SYSCALL_NR_MAX counters (x86-64 and ia32)
 * and cannot fill the map with made-up numbers. */
#define SYSCALL_NR_MAX 1024
#define SYSCALL_NR_INVALID (SYSCALL_NR_MAX - 1)

static __always_inline void count_syscall(__u64 cg, long nr, int compat)
{
	if (nr < 0 || nr >= SYSCALL_NR_INVALID)
		nr = SYSCALL_NR_INVALID;
	struct syscall_key k = { .cgroup_id = cg, .nr = (__u32)nr | (compat ? SYSCALL_KEY_IA32 : 0) };
	__u64 *n = bpf_map_lookup_elem(&syscall_counts, &k);
	if (n) {
		__sync_fetch_and_add(n, 1); /* shared by every CPU, and preemptible */
		return;
	}
	__u64 one = 1;
	long err = bpf_map_update_elem(&syscall_counts, &k, &one, BPF_NOEXIST);
	if (err == -17 /* EEXIST: another CPU inserted it first */) {
		n = bpf_map_lookup_elem(&syscall_counts, &k);
		if (n)
			__sync_fetch_and_add(n, 1);
	} else if (err) {
		count_drop(DROP_SYSCALL_MAP_FULL);
	}
}

static __always_inline int on_sys_enter(struct pt_regs *regs, long nr)
{
	__u64 cg = current_watched();
	if (!cg)
		return 0;
	int compat = in_compat_syscall_traced();
	/* ia32 numbers are counted apart: the same number is another syscall.
	 * x32 syscalls use the x86-64 numbers, with a bit set. */
	count_syscall(cg, compat ? nr : nr & ~X32_SYSCALL_BIT, compat);
	if (!cfg_files_from_lsm)
		emit_syscall_fileop(regs, nr, cg, compat);
	return 0;
}
