/* The kernel ABI of the ringfence programs: every enum and struct the Go
 * side mirrors (bpf2go turns them into Go types through BTF), and the
 * limits it must agree on, as enums so that they reach BTF too
 * (bpf/abi_test.go pins the Go side to them). The maps are declared in
 * maps/, one header per concern; the logic lives in the other headers. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

/* The version of this ABI: pinned state of another version is not adopted
 * as it is (its maps are carried over one by one where their layouts
 * agree). Raise it when the meaning of a map changes without its layout. */
enum abi_version {
	ABI_VERSION = 1,
};

enum abi_limit {
	COMM_LEN = 16,
	PATH_LEN = 512,         /* power of two: offsets are masked with PATH_LEN-1 */
	NAME_LEN = 256,         /* one path component, NUL included */
	FILENAME_LEN = 256,
	ARGS_LEN = 1024,        /* power of two */
	MAX_DEPTH = 32,         /* path components walked */
	MAX_MEMBER_POLICIES = 8,
	MAX_PORT_RANGES = 8,
	MAX_IFACES = 4,
	IFNAMSIZ = 16,
	ALLOW_KEY_LEN = 248,    /* LPM trie data is at most 256 bytes: 4 of policy id, 248 of path */
	ROOT_PATH_LEN = 248,    /* 4 of device, 248 of path */
	PARENT_NAME_LEN = 64,
	MAX_PARENT_PARTS = 8,
	META_NAME_LEN = 32,
	HASH_LEN = 32,          /* sha256 */
};

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
	FILE_OP_IOCTL, /* an ioctl on a file or directory not known to leave it as it was (flags: its command) */
	FILE_OP_FILEATTR, /* file_setattr (6.17+): the attributes chattr and FS_IOC_FSSETXATTR set (flags: at_flags on the cgroup-only tier, 0 on the full tier) */
};

/* How to read a path field of a file event. */
enum path_kind {
	PATH_NONE = 0,
	PATH_ABSOLUTE = 1, /* resolved by the kernel against the process root */
	PATH_RELATIVE = 2, /* as the process passed it, relative to dirfd (AT_FDCWD: cwd) */
	PATH_FD = 3,       /* no name: the object is the open file dirfd */
	PATH_FS = 4,       /* resolved from the dentry: relative to its filesystem root */
	PATH_HANDLE = 5,   /* a file handle (open_by_handle_at) on the filesystem mounted at path (or dirfd) */
	PATH_TRUNCATED = 6, /* cut short (deeper than MAX_DEPTH names, longer than PATH_LEN - 1 bytes,
			     * or a walk out of steps): the first bytes of the path, or its deepest names */
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
	DROP_NO_RECORD = 7,        /* every working record of the CPU held (see maps/scratch.h) */
	DROP_CAUSE_MAX = 8,
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
	/* The container runtime re-executing itself ("<argv0> init") from a
	 * memfd or from one of its binaries on the host: its own setup inside
	 * the container's cgroup, never held. */
	EXE_RUNTIME = 2,
};

/* A file as an object: its inode and its device in the kernel's encoding. */
struct file_id {
	__u64 ino;
	__u32 dev;
	__u32 _pad;
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

/* Every address in a record is 16 bytes, IPv4 stored IPv4-mapped
 * (::ffff:a.b.c.d), so that a v4 bind and a v4-mapped v6 bind agree. */
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

enum rule {
	RULE_READ_ONLY = 1,
	RULE_BIND_INTERFACES = 2,
	RULE_ALLOWED_REGISTRIES = 3,
	RULE_DENY_PRIVILEGED = 4,
};

enum action {
	ACTION_NONE = 0,
	ACTION_AUDIT = 1, /* allow, report a would-deny */
	ACTION_DENY = 2,  /* refuse with EPERM (or drop), report */
};

/* What a bind-rule violation was. */
enum bind_op {
	BIND_OP_BIND = 1,       /* bind() to an address or port outside the rule */
	BIND_OP_LISTEN = 2,     /* listen() on a socket bound (or about to be, implicitly) outside it */
	BIND_OP_DEVICE = 3,     /* SO_BINDTODEVICE / SO_BINDTOIFINDEX to another interface */
	BIND_OP_CONNECTION = 4, /* a connection request to such a listener, dropped */
	BIND_OP_SOCKET = 5,     /* a raw, packet or SCTP socket: traffic no bound address limits */
};

enum policy_flag {
	POLICY_READ_ONLY = 1,
	POLICY_BIND = 2,
};

struct port_range {
	__u16 from;
	__u16 to;
};

/* One compiled policy. Its mode is folded into each rule's action: the
 * loader writes ACTION_AUDIT for a rule the tier cannot enforce. */
struct policy {
	__u32 flags;
	__u16 ro_action;
	__u16 bind_action;
	__u32 nports; /* 0: any port */
	__u32 nifaces;
	struct port_range ports[MAX_PORT_RANGES];
	char ifaces[MAX_IFACES][IFNAMSIZ];
};

/* Address families, as records carry them: the kernel's numbers. */
enum addr_family {
	FAMILY_INET = 2,
	FAMILY_INET6 = 10,
	FAMILY_PACKET = 17,
};

/* member.udp_flags: which of its UDP addresses are set */
enum udp_flag {
	UDP_V4 = 1,
	UDP_V6 = 2,
};

struct member {
	__u64 owner; /* the container's cgroup, whose entry holds the rules */
	__u32 flags; /* union of its policies' flags */
	__u32 n;
	__u32 ids[MAX_MEMBER_POLICIES];
	__u32 exec_policy; /* a policy under which nothing may execute, 0 none */
	__u16 exec_rule;
	__u16 exec_action;
	/* An address every bind policy of the container allows, per family:
	 * a UDP socket bound to the wildcard and port 0 (a resolver's, as
	 * musl binds it) is bound there instead, so it serves on no other
	 * interface. */
	__u32 udp_flags;
	__u32 udp_v4;     /* network order */
	__u8 udp_v6[16];
};

/* A container's root filesystem: the device of the filesystem and the
 * path of the container's root inside it, ending in '/' ("/" for a
 * filesystem of its own, as overlayfs gives each container). */
struct root_key {
	__u32 prefixlen;
	__u32 dev;
	char path[ROOT_PATH_LEN];
};

struct root_value {
	__u64 owner;    /* the container's cgroup: its member entry holds the rules */
	__u32 root_len; /* bytes of the root's path, its final '/' included */
	__u32 _pad;
};

/* A writable path of a read-only policy: an exact path (NUL included in
 * the prefix) or a directory prefix ending in '/'. */
struct allow_key {
	__u32 prefixlen;
	__u32 policy;
	char path[ALLOW_KEY_LEN];
};

/* An address of an allowed interface, for one container and policy.
 * IPv4 is stored IPv4-mapped, so bind4 and a v4-mapped bind6 agree. */
struct addr_key {
	__u64 cgroup;
	__u32 policy;
	__u32 _pad;
	__u8 addr[16];
};

struct ifindex_key {
	__u64 cgroup;
	__u32 policy;
	__u32 ifindex;
};

/* Identical violations: same container, policy, rule, operation and
 * object (a hash of its path, or its address and port). */
struct violation_key {
	__u64 cgroup;
	__u32 policy;
	__u16 rule;
	__u16 op;
	__u32 object;
	__u32 _pad;
};

struct violation_state {
	__u64 window_start;
	__u64 suppressed_total;
	__u32 in_window;
	__u16 action; /* of the last violation, for reports of what was suppressed */
	__u16 _pad;
};

struct violation_event {
	struct event_hdr hdr;
	__u32 policy_id;
	__u16 rule;
	__u16 action;
	/* violations of this container, rule and policy not reported so far
	 * because of the rate limit, since the sensor started */
	__u64 suppressed_total;
	/* the container whose rules were broken: the acting process's, or for
	 * the read-only rule the container whose root filesystem was written */
	__u64 owner;
	__u32 object; /* the rate limiter's hash of the object */
	__u32 op;     /* file_op or bind_op; 0 for exec */
	__u16 path_kind;
	__u16 path2_kind;
	__u32 path_len;
	__u32 path2_len;
	__u16 family;
	__u16 port;
	__u16 protocol;
	__u16 _pad;
	__u32 _pad2;
	/* bind rule: the address (IPv4-mapped for IPv4); for BIND_OP_DEVICE
	 * by index, the interface index in its first four bytes */
	__u8 addr[16];
	/* read-only rule: the paths as in file_event; exec: the file;
	 * BIND_OP_DEVICE by name: the interface name */
	char path[PATH_LEN];
	char path2[PATH_LEN];
};

struct parent_name {
	__u64 parent;
	char name[PARENT_NAME_LEN];
};

/* parent_step: this name is part number depth (from 0) of configured runtime
 * parent dir, whose last part is number last. */
struct parent_step {
	__u32 dir;
	__u32 depth;
	__u32 last;
};

struct parent_part {
	char name[PARENT_NAME_LEN];
};


/* The pinned state's description, written by the daemon that made or last
 * changed it (meta, one entry): a daemon adopts pinned state only where it
 * finds its own layouts (map_layouts: a map's name to its layout's hash). */
struct pin_meta {
	__u32 abi;                /* ABI_VERSION */
	__u32 _pad;
	__u8 layout[HASH_LEN];    /* hash of every map's layout */
	__u8 programs[HASH_LEN];  /* hash of the programs and their settings */
	__u64 generation;         /* policy generation in force */
	__u64 updated_ns;         /* CLOCK_REALTIME of the last change */
	char version[META_NAME_LEN]; /* the daemon build that loaded the programs */
};

struct map_name {
	char name[META_NAME_LEN];
};

struct layout_hash {
	__u8 hash[HASH_LEN];
};

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
const enum rule *unused_rule __attribute__((unused));
const enum action *unused_action __attribute__((unused));
const enum bind_op *unused_bind_op __attribute__((unused));
const enum policy_flag *unused_policy_flag __attribute__((unused));
const enum udp_flag *unused_udp_flag __attribute__((unused));
const enum addr_family *unused_addr_family __attribute__((unused));
const struct violation_event *unused_violation_event __attribute__((unused));
const struct root_key *unused_root_key __attribute__((unused));
const struct root_value *unused_root_value __attribute__((unused));
const struct parent_name *unused_parent_name __attribute__((unused));
const struct parent_step *unused_parent_step __attribute__((unused));
const struct parent_part *unused_parent_part __attribute__((unused));
const enum abi_version *unused_abi_version __attribute__((unused));
const enum abi_limit *unused_abi_limit __attribute__((unused));
const struct pin_meta *unused_pin_meta __attribute__((unused));
const struct map_name *unused_map_name __attribute__((unused));
const struct layout_hash *unused_layout_hash __attribute__((unused));
