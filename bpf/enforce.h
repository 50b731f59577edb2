/* Policy enforcement: the decisions the hooks take from the maps userspace
 * compiles policies into (maps/policy.h), and violation reports.
 *
 * A container's cgroup has a member entry naming the policies that select
 * it (by id). Each rule is judged against every one of those policies and
 * the strictest outcome wins: deny over audit over allow. Userspace swaps a
 * policy set by writing the new policies under new ids, then each member
 * entry in one update, then deleting the old policies, so a container is
 * always under the old set or the new one. Only containers have entries: a
 * process of a cgroup below one is judged by the nearest ancestor's, so
 * moving into a child cgroup escapes nothing.
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

#define EPERM 1
#define VIOLATION_BURST 10            /* reported per container, rule and policy each second */
#define VIOLATION_WINDOW_NS 1000000000ULL

#define MAX_CGROUP_LEVEL 16

/* task_member returns the rules of the current task, whose cgroup is cg:
 * its cgroup's entry, or the nearest ancestor's. Every cgroup below a
 * container belongs to it, whenever and however it was made (before the
 * container was classified, in a cgroup namespace of its own, with every
 * map full): only containers have entries, and nothing a container does
 * to its cgroup tree takes a process out from under its container's. */
static __always_inline struct member *task_member(__u64 cg)
{
	if (bpf_map_lookup_elem(&exempt, &cg))
		return 0; /* the sensor itself: never judged, whatever selects it */
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
	if (bpf_map_lookup_elem(&exempt, &cg))
		return 0;
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

/* violation_start prepares the violation record v. Outside process
 * context (in_task 0: a packet) there is no acting task, only the
 * socket's cgroup. */
static __always_inline struct violation_event *violation_start(struct violation_event *v, __u64 cg, __u16 source, __u32 policy, __u16 rule, __u16 action, int in_task)
{
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

/* count_violation counts a violation by rule and action, whether or not
 * anyone reads the ring; atomically, as count_drop. */
static __always_inline void count_violation(__u16 rule, __u16 action)
{
	__u32 i = (__u32)(rule & 7) * 4 + (action & 3);
	__u64 *n = bpf_map_lookup_elem(&violation_counts, &i);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/* violation_submit reports v unless an identical violation has had
 * VIOLATION_BURST reports in the current second: then it is only counted,
 * and the next report carries the count. The decision itself never
 * depends on this. */
static __always_inline void violation_submit(struct violation_event *v, __u64 owner)
{
	count_violation(v->rule, v->action);
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

/* report_record returns the record a violation decided outside the file
 * hooks is reported from: a record claimed in process context, the packet
 * program's own (in_task 0). With none free the report is lost, counted
 * with the violation; the decision stands. */
static __always_inline struct report_record *report_record(int in_task, __u16 rule, __u16 action)
{
	if (!in_task)
		return report_slot(SCRATCH_PACKET);
	struct report_record *r = record_claim();
	if (!r)
		count_violation(rule, action);
	return r;
}

/* report_done gives back what report_record gave. */
static __always_inline void report_done(struct report_record *r, int in_task)
{
	if (in_task)
		record_release(r);
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
	__u16 cut; /* the path was cut short (path.h) */
	__u32 len; /* of the path written to the caller's buffer */
};

/* root_at finds the registered container root above the object whose path
 * inside its filesystem (len bytes, or its top) is at path, on device dev. */
static __always_inline struct root_value *root_at(struct enforce_scratch *sc, __u32 dev, const char *path, __u32 len)
{
	/* The path and a '/', so that the root "/a/b/" also holds "/a/b". */
	__u32 n = len + 1;
	if (n > ROOT_PATH_LEN)
		n = ROOT_PATH_LEN;
	bpf_probe_read_kernel(sc->root.path, ROOT_PATH_LEN, path);
	/* ROOT_PATH_LEN is no power of two: a mask would be no bound (248 - 1
	 * clears bit 3 of the index), so the bound itself, kept through to
	 * the store. */
	__u32 at = len;
	barrier_var(at);
	if (at < ROOT_PATH_LEN)
		sc->root.path[at] = '/';
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

/* task_owner_t is the container (its cgroup id) whose rules the current
 * task, of cgroup cg, is under: task_member's, 0 for none. A global
 * function, verified once per program rather than at each judgement. */
__noinline __u64 task_owner_t(__u64 cg)
{
	struct member *m = task_member(cg);
	return m ? m->owner : 0;
}

/* ro_judge judges a write to the object d (a dentry; negative for a name
 * about to be made) against the read-only rule of the container whose
 * root filesystem holds it, whoever writes, and writes the object's path
 * from that container's root into out (PATH_LEN). */
static __always_inline void ro_judge(struct enforce_scratch *sc, struct dentry *d, char *out, struct ro_judgement *j)
{
	/* Every field set on every path: the caller reads the judgement
	 * whichever way it was reached. */
	j->owner = 0;
	j->policy = 0;
	j->action = ACTION_NONE;
	j->cut = 0;
	j->len = 0;
	if (!d)
		return;
	__u32 dev = BPF_CORE_READ(d, d_sb, s_dev);
	if (!bpf_map_lookup_elem(&ro_devs, &dev))
		return;
	__u32 truncated = 0;
	__u32 len = object_path(&sc->ps, d, sc->opath, &truncated);
	__u16 cut = sc->ps.cut != 0;
	/* Too deep, the path is the object's deepest names, which would match
	 * a root below "/" by their look alone: such an object is placed by
	 * the top of its path instead, whoever writes (roots are at most
	 * MAX_DEPTH names deep: PutRoot), its path from that root not known.
	 * One whose top cannot be reached either is held by a root at "/" of
	 * its device whatever its names, and otherwise judged under the
	 * writer's own container's rules (fail closed). Either way its
	 * deepest names are its path. */
	struct root_value *r;
	if (truncated) {
		__u32 top = top_path_t(&sc->ps, scalar_of(d));
		if (top) {
			r = root_at(sc, dev, sc->ps.buf, top);
			if (!r)
				return; /* below no root, known from its top */
		} else {
			r = root_at(sc, dev, sc->opath, len);
			if (r && r->root_len > 1)
				r = 0;
		}
	} else {
		r = root_at(sc, dev, sc->opath, len);
	}
	__u64 owner;
	__u32 skip = 0;
	if (r) {
		owner = r->owner;
		if (!truncated)
			skip = r->root_len - 1; /* the root's path, but its final '/' */
	} else if (truncated) {
		owner = task_owner_t(sc->fe.hdr.cgroup_id);
	} else {
		return; /* on the device of a root, but below none */
	}
	struct member *m = bpf_map_lookup_elem(&members, &owner);
	if (!m || !(m->flags & POLICY_READ_ONLY))
		return;
	j->owner = owner;
	j->cut = cut;
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

/* bind_violation reports a bind-rule violation. */
static __always_inline void bind_violation(__u64 cg, struct member *m, __u16 source, __u32 policy, __u16 verdict,
					   __u32 op, __u16 family, const __u8 *addr, __u16 port, __u16 proto, int in_task)
{
	struct report_record *r = report_record(in_task, RULE_BIND_INTERFACES, verdict);
	if (!r)
		return;
	struct violation_event *v = violation_start(&r->ve, cg, source, policy, RULE_BIND_INTERFACES, verdict, in_task);
	v->op = op;
	v->family = family;
	v->port = port;
	v->protocol = proto;
	if (addr)
		__builtin_memcpy(v->addr, addr, 16);
	violation_submit(v, m->owner);
	report_done(r, in_task);
}

/* --- executing anything ------------------------------------------------- */

/* exec_violation reports an exec under a rule that forbids executing
 * anything, with the executed file as its object. */
static __always_inline void exec_violation(__u64 cg, struct member *m, __u16 source, const char *filename)
{
	struct report_record *r = report_record(1, m->exec_rule, m->exec_action);
	if (!r)
		return;
	struct violation_event *v = violation_start(&r->ve, cg, source, m->exec_policy, m->exec_rule, m->exec_action, 1);
	long n = bpf_probe_read_kernel_str(v->path, PATH_LEN, filename);
	v->path_kind = PATH_ABSOLUTE;
	v->path_len = n > 0 ? n - 1 : 0;
	violation_submit(v, m->owner);
	report_done(r, 1);
}
