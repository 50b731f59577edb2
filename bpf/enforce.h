/* Policy enforcement: the maps userspace compiles policies into, the
 * decisions the hooks take from them, and violation reports.
 *
 * A container's cgroup has a member entry naming the policies that select
 * it (by id). Each rule is judged against every one of those policies and
 * the strictest outcome wins: deny over audit over allow. Userspace swaps a
 * policy set by writing the new policies under new ids, then each member
 * entry in one update, then deleting the old policies, so a container is
 * always under the old set or the new one. Cgroups created below a member
 * point to its entry, so moving into a child cgroup escapes nothing.
 *
 * The read-only rule judges the object written, never the actor's view: a
 * container's root filesystem is registered (ro_roots) by its device and
 * the path of its root inside that filesystem, and a write to an object
 * below a registered root is judged under the rules of the container whose
 * root it is, by the object's path from that root, whoever the actor is and
 * whatever root, mounts or namespaces it set up. */
#pragma once
#include "common.h"
#include "path.h"

#define MAX_MEMBER_POLICIES 8
#define MAX_PORT_RANGES 8
#define MAX_IFACES 4
#define IFNAMSIZ 16
#define ALLOW_KEY_LEN 248 /* LPM trie data is at most 256 bytes: 4 of policy id, 248 of path */
#define EPERM 1
#define VIOLATION_BURST 10            /* reported per container, rule and policy each second */
#define VIOLATION_WINDOW_NS 1000000000ULL

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

#define ROOT_PATH_LEN 248 /* LPM trie data is at most 256 bytes: 4 of device, 248 of path */

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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct policy);
} policies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct member);
} members SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct allow_key);
	__type(value, __u32);
} allow_writes SEC(".maps");

/* The root filesystems of containers under a read-only rule, and the
 * devices they are on: a write to an object on any other device needs no
 * further look. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct root_key);
	__type(value, struct root_value);
} ro_roots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);   /* dev_t, as the kernel encodes it */
	__type(value, __u32); /* roots on it */
} ro_devs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct addr_key);
	__type(value, __u32);
} bind_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ifindex_key);
	__type(value, __u32);
} bind_ifindexes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct violation_key);
	__type(value, struct violation_state);
} violation_limits SEC(".maps");

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
	__type(value, struct enforce_scratch);
} enforce_scratch SEC(".maps");

const enum rule *unused_rule __attribute__((unused));
const enum action *unused_action __attribute__((unused));
const enum bind_op *unused_bind_op __attribute__((unused));
const enum policy_flag *unused_policy_flag __attribute__((unused));
const enum udp_flag *unused_udp_flag __attribute__((unused));
const struct violation_event *unused_violation_event __attribute__((unused));
const struct root_key *unused_root_key __attribute__((unused));
const struct root_value *unused_root_value __attribute__((unused));

static __always_inline struct enforce_scratch *enforce_scratch_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&enforce_scratch, &zero);
}

#define MAX_CGROUP_LEVEL 16

/* task_member returns the rules of the current task, whose cgroup is cg:
 * its cgroup's entry, or the nearest ancestor's. Every cgroup below a
 * container belongs to it, whenever and however it was made (before the
 * container was classified, in a cgroup namespace of its own, with every
 * map full): only containers have entries, and nothing a container does
 * to its cgroup tree takes a process out from under its container's. */
static __always_inline struct member *task_member(__u64 cg)
{
	struct member *m = bpf_map_lookup_elem(&members, &cg);
	if (m)
		return m;
	for (int level = MAX_CGROUP_LEVEL; level > 0; level--) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);
		if (!id || id == cg)
			continue; /* deeper than the task's cgroup, or the cgroup itself */
		m = bpf_map_lookup_elem(&members, &id);
		if (m)
			return m;
	}
	return 0;
}

/* skb_member is task_member for a packet's socket, whose cgroup is cg. */
static __always_inline struct member *skb_member(struct __sk_buff *skb, __u64 cg)
{
	struct member *m = bpf_map_lookup_elem(&members, &cg);
	if (m)
		return m;
	/* Every packet of the node passes here: only the sockets of watched
	 * cgroups (every container and what is below it) are looked further. */
	if (!bpf_map_lookup_elem(&watched, &cg))
		return 0;
	for (int level = MAX_CGROUP_LEVEL; level > 0; level--) {
		__u64 id = bpf_skb_ancestor_cgroup_id(skb, level);
		if (!id || id == cg)
			continue;
		m = bpf_map_lookup_elem(&members, &id);
		if (m)
			return m;
	}
	return 0;
}

/* violation_start_ctx prepares the scratch violation record. Outside
 * process context (in_task 0: a packet) there is no acting task, only the
 * socket's cgroup. */
static __always_inline struct violation_event *violation_start_ctx(__u64 cg, __u16 source, __u32 policy, __u16 rule, __u16 action, int in_task)
{
	struct enforce_scratch *sc = enforce_scratch_get();
	if (!sc)
		return 0;
	struct violation_event *v = &sc->ve;
	if (in_task) {
		fill_hdr(&v->hdr, cg, KIND_VIOLATION, source);
	} else {
		__builtin_memset(&v->hdr, 0, sizeof(v->hdr));
		v->hdr.ts_boot_ns = bpf_ktime_get_boot_ns();
		v->hdr.cgroup_id = cg;
		v->hdr.kind = KIND_VIOLATION;
		v->hdr.source = source;
	}
	v->policy_id = policy;
	v->rule = rule;
	v->action = action;
	v->suppressed_total = 0;
	v->owner = 0;
	v->op = 0;
	v->path_kind = PATH_NONE;
	v->path2_kind = PATH_NONE;
	v->path_len = 0;
	v->path2_len = 0;
	v->family = 0;
	v->port = 0;
	v->protocol = 0;
	v->_pad = 0;
	v->_pad2 = 0;
	v->object = 0;
	__builtin_memset(v->addr, 0, sizeof(v->addr));
	return v;
}

static __always_inline struct violation_event *violation_start(__u64 cg, __u16 source, __u32 policy, __u16 rule, __u16 action)
{
	return violation_start_ctx(cg, source, policy, rule, action, 1);
}

/* object_hash is FNV-1a over the first HASHED_BYTES of v's path and over
 * its address and port: what tells identical violations apart. */
#define HASHED_BYTES 128

static __always_inline __u32 object_hash(struct violation_event *v)
{
	__u32 h = 2166136261u;
	__u32 n = v->path_len;
	for (int i = 0; i < HASHED_BYTES; i++) {
		if (i >= n)
			break;
		h = (h ^ (__u8)v->path[i]) * 16777619u;
	}
	for (int i = 0; i < 16; i++)
		h = (h ^ v->addr[i]) * 16777619u;
	return (h ^ v->port) * 16777619u;
}

/* violation_submit reports v unless an identical violation has had
 * VIOLATION_BURST reports in the current second: then it is only counted,
 * and the next report carries the count. The decision itself never
 * depends on this. */
static __always_inline void violation_submit(struct violation_event *v, __u64 owner)
{
	v->owner = owner;
	v->object = object_hash(v);
	struct violation_key k = { .cgroup = owner, .policy = v->policy_id, .rule = v->rule, .op = (__u16)v->op, .object = v->object };
	__u64 now = bpf_ktime_get_boot_ns();
	struct violation_state *st = bpf_map_lookup_elem(&violation_limits, &k);
	if (!st) {
		struct violation_state fresh = { .window_start = now, .in_window = 1, .action = v->action };
		bpf_map_update_elem(&violation_limits, &k, &fresh, BPF_ANY);
	} else {
		st->action = v->action;
		if (now - st->window_start > VIOLATION_WINDOW_NS) {
			st->window_start = now;
			st->in_window = 0;
		}
		if (st->in_window >= VIOLATION_BURST) {
			__sync_fetch_and_add(&st->suppressed_total, 1);
			return;
		}
		st->in_window++;
		v->suppressed_total = st->suppressed_total;
	}
	if (bpf_ringbuf_output(&events, v, sizeof(*v), 0))
		count_drop(DROP_RING_VIOLATION);
}

/* --- read-only root filesystem ------------------------------------------ */

/* writable reports whether policy id lists path (len bytes) in allowWrites. */
static __always_inline int writable(struct enforce_scratch *sc, __u32 id, const char *path, __u32 len)
{
	__u32 n = len + 1; /* the NUL too: exact entries end with it */
	if (n > ALLOW_KEY_LEN)
		n = ALLOW_KEY_LEN;
	sc->key.prefixlen = 32 + n * 8;
	sc->key.policy = id;
	bpf_probe_read_kernel(sc->key.path, ALLOW_KEY_LEN, path);
	return bpf_map_lookup_elem(&allow_writes, &sc->key) != 0;
}

/* A write judged against the read-only rule: what the strictest policy of
 * the object's container says, and the object's path from that
 * container's root. */
struct ro_judgement {
	__u64 owner;
	__u32 policy;
	__u16 action;
	__u16 _pad;
	__u32 len; /* of the path written to the caller's buffer */
};

/* root_of finds the registered container root above the object whose path
 * inside its filesystem (len bytes) is in sc->opath, on device dev. */
static __always_inline struct root_value *root_of(struct enforce_scratch *sc, __u32 dev, __u32 len)
{
	/* The path and a '/', so that the root "/a/b/" also holds "/a/b". */
	__u32 n = len + 1;
	if (n > ROOT_PATH_LEN)
		n = ROOT_PATH_LEN;
	bpf_probe_read_kernel(sc->root.path, ROOT_PATH_LEN, sc->opath);
	if (len < ROOT_PATH_LEN)
		sc->root.path[len & (ROOT_PATH_LEN - 1)] = '/';
	sc->root.prefixlen = 32 + n * 8;
	sc->root.dev = dev;
	return bpf_map_lookup_elem(&ro_roots, &sc->root);
}

/* strictest_ro is the strictest read-only action of m's policies: what a
 * write the kernel cannot judge (a path too deep to be known) gets. */
static __always_inline __u16 strictest_ro(struct member *m, __u32 *policy)
{
	__u16 verdict = ACTION_NONE;
	for (int i = 0; i < MAX_MEMBER_POLICIES; i++) {
		if (i >= m->n)
			break;
		__u32 id = m->ids[i];
		struct policy *p = bpf_map_lookup_elem(&policies, &id);
		if (p && (p->flags & POLICY_READ_ONLY) && p->ro_action > verdict) {
			verdict = p->ro_action;
			*policy = id;
		}
	}
	return verdict;
}

/* ro_judge judges a write to the object d (a dentry; negative for a name
 * about to be made) against the read-only rule of the container whose
 * root filesystem holds it, whoever writes, and writes the object's path
 * from that container's root into out (PATH_LEN). */
static __always_inline void ro_judge(struct enforce_scratch *sc, struct dentry *d, char *out, struct ro_judgement *j)
{
	j->action = ACTION_NONE;
	j->len = 0;
	if (!d)
		return;
	__u32 dev = BPF_CORE_READ(d, d_sb, s_dev);
	if (!bpf_map_lookup_elem(&ro_devs, &dev))
		return;
	__u32 truncated = 0;
	__u32 len = object_path(d, sc->opath, &truncated);
	struct root_value *r = root_of(sc, dev, len);
	if (!r)
		return; /* on the device of a root, but below none */
	__u64 owner = r->owner;
	__u32 skip = r->root_len - 1; /* the root's path, but its final '/' */
	struct member *m = bpf_map_lookup_elem(&members, &owner);
	if (!m || !(m->flags & POLICY_READ_ONLY))
		return;
	j->owner = owner;
	if (skip > len)
		skip = len;
	__u32 rel = len - skip;
	if (skip >= PATH_LEN)
		skip = PATH_LEN - 1;
	bpf_probe_read_kernel(out, PATH_LEN - 1, &sc->opath[skip & (PATH_LEN - 1)]);
	out[PATH_LEN - 1] = 0;
	if (rel == 0) { /* the root itself */
		out[0] = '/';
		out[1] = 0;
		rel = 1;
	}
	j->len = rel;
	if (truncated) {
		/* Deeper than the walk goes: the path is not known, so no
		 * allowWrites entry can be said to hold it. Fail closed. */
		j->action = strictest_ro(m, &j->policy);
		return;
	}
	for (int i = 0; i < MAX_MEMBER_POLICIES; i++) {
		if (i >= m->n)
			break;
		__u32 id = m->ids[i];
		struct policy *p = bpf_map_lookup_elem(&policies, &id);
		if (!p || !(p->flags & POLICY_READ_ONLY) || p->ro_action <= j->action)
			continue;
		if (writable(sc, id, out, rel))
			continue;
		j->action = p->ro_action;
		j->policy = id;
	}
}

/* --- interface binding -------------------------------------------------- */

static __always_inline int port_allowed(struct policy *p, __u16 port)
{
	if (p->nports == 0)
		return 1;
	for (int j = 0; j < MAX_PORT_RANGES; j++) {
		if (j >= p->nports)
			break;
		if (port >= p->ports[j].from && port <= p->ports[j].to)
			return 1;
	}
	return 0;
}

static __always_inline int addr_allowed(__u64 owner, __u32 id, const __u8 *addr)
{
	struct addr_key k = { .cgroup = owner, .policy = id };
	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&bind_addrs, &k) != 0;
}

/* bind_verdict judges accepting traffic on addr (16 bytes, IPv4-mapped for
 * IPv4) and port under every bind policy of m; any_port judges the address
 * alone (a port the kernel picks). */
static __always_inline __u16 bind_verdict(struct member *m, const __u8 *addr, __u16 port, int any_port, __u32 *policy)
{
	__u16 verdict = ACTION_NONE;
	for (int i = 0; i < MAX_MEMBER_POLICIES; i++) {
		if (i >= m->n)
			break;
		__u32 id = m->ids[i];
		struct policy *p = bpf_map_lookup_elem(&policies, &id);
		if (!p || !(p->flags & POLICY_BIND))
			continue;
		if ((any_port || port_allowed(p, port)) && addr_allowed(m->owner, id, addr))
			continue;
		if (p->bind_action > verdict) {
			verdict = p->bind_action;
			*policy = id;
		}
	}
	return verdict;
}

union ifname {
	char c[IFNAMSIZ];
	__u64 q[2];
};

/* device_verdict judges binding a socket to the interface named name (or,
 * with a name of zeros, to ifindex). */
static __always_inline __u16 device_verdict(struct member *m, union ifname *name, __u32 ifindex, __u32 *policy)
{
	__u16 verdict = ACTION_NONE;
	for (int i = 0; i < MAX_MEMBER_POLICIES; i++) {
		if (i >= m->n)
			break;
		__u32 id = m->ids[i];
		struct policy *p = bpf_map_lookup_elem(&policies, &id);
		if (!p || !(p->flags & POLICY_BIND))
			continue;
		int ok = 0;
		if (ifindex) {
			struct ifindex_key k = { .cgroup = m->owner, .policy = id, .ifindex = ifindex };
			ok = bpf_map_lookup_elem(&bind_ifindexes, &k) != 0;
		} else {
			for (int j = 0; j < MAX_IFACES; j++) {
				if (j >= p->nifaces)
					break;
				union ifname *allowed = (union ifname *)p->ifaces[j];
				if (allowed->q[0] == name->q[0] && allowed->q[1] == name->q[1]) {
					ok = 1;
					break;
				}
			}
		}
		if (!ok && p->bind_action > verdict) {
			verdict = p->bind_action;
			*policy = id;
		}
	}
	return verdict;
}

/* ipv4_mapped writes ::ffff:ip (ip in network order) into addr. */
static __always_inline void ipv4_mapped(__u8 *addr, __u32 ip)
{
	__builtin_memset(addr, 0, 10);
	addr[10] = 0xff;
	addr[11] = 0xff;
	__builtin_memcpy(&addr[12], &ip, 4);
}

/* bind_violation reports a bind-rule violation on the scratch record. */
static __always_inline void bind_violation(__u64 cg, struct member *m, __u16 source, __u32 policy, __u16 verdict,
					   __u32 op, __u16 family, const __u8 *addr, __u16 port, __u16 proto, int in_task)
{
	struct violation_event *v = violation_start_ctx(cg, source, policy, RULE_BIND_INTERFACES, verdict, in_task);
	if (!v)
		return;
	v->op = op;
	v->family = family;
	v->port = port;
	v->protocol = proto;
	if (addr)
		__builtin_memcpy(v->addr, addr, 16);
	violation_submit(v, m->owner);
}

/* --- executing anything ------------------------------------------------- */

/* exec_violation reports an exec under a rule that forbids executing
 * anything, with the executed file as its object. */
static __always_inline void exec_violation(__u64 cg, struct member *m, __u16 source, const char *filename)
{
	struct violation_event *v = violation_start(cg, source, m->exec_policy, m->exec_rule, m->exec_action);
	if (!v)
		return;
	long n = bpf_probe_read_kernel_str(v->path, PATH_LEN, filename);
	v->path_kind = PATH_ABSOLUTE;
	v->path_len = n > 0 ? n - 1 : 0;
	violation_submit(v, m->owner);
}
