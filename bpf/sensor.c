//go:build ignore

/* Entry points of the ringfence sensor. Each SEC() is a thin wrapper; the
 * logic lives in the headers. Programs are grouped by tier in the loader:
 * tracepoints and cgroup hooks load everywhere, lsm/ programs only where the
 * capability probe found a working BPF LSM. */
#include "common.h"
#include "process.h"
#include "syscalls.h"
#include "files_lsm.h"
#include "bind.h"

SEC("tp_btf/sched_process_exec")
int BPF_PROG(rf_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	on_exec(p, bprm);
	exec_enforce(bprm);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(rf_exit, struct task_struct *p)
{
	return on_exit(p);
}

SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(rf_cgroup_mkdir, struct cgroup *cgrp, const char *path)
{
	return on_cgroup_mkdir(cgrp);
}

SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(rf_cgroup_rmdir, struct cgroup *cgrp, const char *path)
{
	return on_cgroup_rmdir(cgrp);
}

SEC("tp_btf/sys_enter")
int BPF_PROG(rf_sys_enter, struct pt_regs *regs, long id)
{
	return on_sys_enter(regs, id);
}

SEC("cgroup/bind4")
int rf_bind4(struct bpf_sock_addr *ctx)
{
	return on_bind4(ctx);
}

SEC("cgroup/bind6")
int rf_bind6(struct bpf_sock_addr *ctx)
{
	return on_bind6(ctx);
}

SEC("cgroup/setsockopt")
int rf_setsockopt(struct bpf_sockopt *ctx)
{
	return on_setsockopt(ctx);
}

SEC("cgroup/sock_create")
int rf_sock_create(struct bpf_sock *sk)
{
	return on_sock_create(sk);
}

SEC("cgroup_skb/ingress")
int rf_skb_ingress(struct __sk_buff *skb)
{
	return on_skb_ingress(skb);
}

SEC("lsm/bprm_check_security")
int BPF_PROG(rf_lsm_bprm_check, struct linux_binprm *bprm)
{
	return lsm_bprm_check(bprm);
}

SEC("lsm/socket_create")
int BPF_PROG(rf_lsm_socket_create, int family, int type, int protocol, int kern)
{
	return lsm_socket_create(family, type, protocol, kern);
}

SEC("lsm/socket_setsockopt")
int BPF_PROG(rf_lsm_socket_setsockopt, struct socket *sock, int level, int optname)
{
	return lsm_socket_setsockopt(level, optname);
}

SEC("lsm/socket_listen")
int BPF_PROG(rf_lsm_socket_listen, struct socket *sock, int backlog)
{
	return lsm_socket_listen(sock);
}

/* The capability probe loads this: if it loads, LSM programs can. */
SEC("lsm/file_open")
int BPF_PROG(rf_probe_lsm, struct file *file)
{
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(rf_lsm_file_open, struct file *file)
{
	return lsm_file_open(file);
}

SEC("lsm/path_truncate")
int BPF_PROG(rf_lsm_path_truncate, const struct path *path)
{
	return lsm_path_truncate(path);
}

SEC("lsm/file_truncate")
int BPF_PROG(rf_lsm_file_truncate, struct file *file)
{
	return lsm_file_truncate(file);
}

SEC("lsm/path_unlink")
int BPF_PROG(rf_lsm_path_unlink, const struct path *dir, struct dentry *dentry)
{
	return path_op(FILE_OP_UNLINK, dir, dentry, 0);
}

SEC("lsm/path_mkdir")
int BPF_PROG(rf_lsm_path_mkdir, const struct path *dir, struct dentry *dentry, umode_t mode)
{
	return path_op(FILE_OP_MKDIR, dir, dentry, mode);
}

SEC("lsm/path_rmdir")
int BPF_PROG(rf_lsm_path_rmdir, const struct path *dir, struct dentry *dentry)
{
	return path_op(FILE_OP_RMDIR, dir, dentry, 0);
}

SEC("lsm/path_mknod")
int BPF_PROG(rf_lsm_path_mknod, const struct path *dir, struct dentry *dentry, umode_t mode, unsigned int dev)
{
	return lsm_path_mknod(dir, dentry, mode);
}

SEC("lsm/path_rename")
int BPF_PROG(rf_lsm_path_rename, const struct path *old_dir, struct dentry *old_dentry,
	     const struct path *new_dir, struct dentry *new_dentry, unsigned int flags)
{
	return lsm_path_rename(old_dir, old_dentry, new_dir, new_dentry, flags);
}

SEC("lsm/path_link")
int BPF_PROG(rf_lsm_path_link, struct dentry *old_dentry, const struct path *new_dir, struct dentry *new_dentry)
{
	return lsm_path_link(old_dentry, new_dir, new_dentry);
}

SEC("lsm/path_symlink")
int BPF_PROG(rf_lsm_path_symlink, const struct path *dir, struct dentry *dentry, const char *old_name)
{
	return lsm_path_symlink(dir, dentry, old_name);
}

SEC("lsm/path_chmod")
int BPF_PROG(rf_lsm_path_chmod, const struct path *path, umode_t mode)
{
	return path_op(FILE_OP_CHMOD, path, 0, mode);
}

SEC("lsm/path_chown")
int BPF_PROG(rf_lsm_path_chown, const struct path *path, __u32 uid, __u32 gid)
{
	return lsm_path_chown(path, uid, gid);
}

SEC("lsm/inode_setxattr")
int BPF_PROG(rf_lsm_inode_setxattr, void *idmap, struct dentry *dentry)
{
	return dentry_op(FILE_OP_SETXATTR, dentry, 0);
}

SEC("lsm/inode_removexattr")
int BPF_PROG(rf_lsm_inode_removexattr, void *idmap, struct dentry *dentry)
{
	return dentry_op(FILE_OP_REMOVEXATTR, dentry, 0);
}

/* From 6.2 on, POSIX ACLs (system.posix_acl_access and _default) are set and
 * removed through these hooks instead of inode_setxattr/inode_removexattr;
 * they are reported as setxattr and removexattr. Optional: absent on 6.1. */
SEC("lsm/inode_set_acl")
int BPF_PROG(rf_lsm_inode_set_acl, void *idmap, struct dentry *dentry)
{
	return dentry_op(FILE_OP_SETXATTR, dentry, 0);
}

SEC("lsm/inode_remove_acl")
int BPF_PROG(rf_lsm_inode_remove_acl, void *idmap, struct dentry *dentry)
{
	return dentry_op(FILE_OP_REMOVEXATTR, dentry, 0);
}

SEC("lsm/file_ioctl")
int BPF_PROG(rf_lsm_file_ioctl, struct file *file, unsigned int cmd, unsigned long arg)
{
	return lsm_file_ioctl(file, cmd);
}

/* The ioctls of ia32 processes on kernels that have this hook (6.8, and
 * stable kernels it was backported to); file_ioctl sees them elsewhere. */
SEC("lsm/file_ioctl_compat")
int BPF_PROG(rf_lsm_file_ioctl_compat, struct file *file, unsigned int cmd, unsigned long arg)
{
	return lsm_file_ioctl(file, cmd);
}

/* The file_setattr syscall (6.17) sets the attribute flags by path, with no
 * ioctl. Optional: absent before 6.17. */
SEC("lsm/inode_file_setattr")
int BPF_PROG(rf_lsm_inode_file_setattr, struct dentry *dentry, void *fa)
{
	return lsm_inode_file_setattr(dentry);
}

/* inode_setattr gained an idmap first argument in 6.3; the loader says which. */
SEC("lsm/inode_setattr")
int BPF_PROG(rf_lsm_inode_setattr, void *a0, void *a1, void *a2)
{
	if (cfg_setattr_has_idmap)
		return lsm_inode_setattr(a1, a2);
	return lsm_inode_setattr(a0, a1);
}
