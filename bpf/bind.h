/* Socket binds and the interface-binding rule.
 *
 * The cgroup sock_addr hooks (attached at the cgroup v2 root, every tier)
 * see an explicit bind after the kernel validated the address and before it
 * happens: they report it and refuse it when a policy forbids it. A listen
 * on a socket nobody bound binds it implicitly to the wildcard address and
 * an ephemeral port without passing those hooks: the full tier refuses the
 * listen in its LSM hook; every tier also drops, at cgroup ingress, each
 * connection request that reaches a listener outside the rule. A TCP bind
 * to port 0 (the kernel picks the port, as clients do) is left to that
 * listen check, so outbound connections keep working; a UDP bind has no
 * listen to wait for, so it is judged by its address whatever its port.
 * Sockets that receive traffic without an address the rule could judge
 * (raw, SCTP with its own bind paths, packet sockets) are refused to a
 * container under the rule where a hook sees their creation. */
#pragma once
#include "enforce.h"

#define AF_INET FAMILY_INET
#define AF_INET6 FAMILY_INET6
#define AF_PACKET FAMILY_PACKET
#define SOCK_DGRAM 2
#define SOCK_RAW 3
#define SOL_SOCKET 1
#define SO_BINDTODEVICE 25
#define SO_BINDTOIFINDEX 62
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_SCTP 132
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10
#define SOCKOPT_PAGE 4096

static __always_inline int is_wildcard(const __u8 *addr)
{
	__u64 hi, lo;
	__builtin_memcpy(&hi, addr, 8);
	__builtin_memcpy(&lo, addr + 8, 8);
	/* :: or ::ffff:0.0.0.0 */
	return hi == 0 && (lo == 0 || lo == bpf_htonl(0xffff) * 1ULL);
}

/* udp_rebind binds a UDP socket asked for the wildcard and port 0 to the
 * container's UDP address of its family instead, and reports whether it
 * could. */
static __always_inline int udp_rebind(struct bpf_sock_addr *ctx, struct member *m, __u16 family, __u8 *addr)
{
	if (family == AF_INET && (m->udp_flags & UDP_V4)) {
		ctx->user_ip4 = m->udp_v4;
		ipv4_mapped(addr, m->udp_v4);
		return 1;
	}
	if (family == AF_INET6 && (m->udp_flags & UDP_V6)) {
		__u32 w[4];
		__builtin_memcpy(w, m->udp_v6, 16);
		ctx->user_ip6[0] = w[0];
		ctx->user_ip6[1] = w[1];
		ctx->user_ip6[2] = w[2];
		ctx->user_ip6[3] = w[3];
		__builtin_memcpy(addr, m->udp_v6, 16);
		return 1;
	}
	return 0;
}

/* bind_check judges an explicit bind and returns the hook's answer. addr
 * (IPv4-mapped for IPv4) is updated when the bind is moved to another
 * address. */
static __always_inline int bind_check(struct bpf_sock_addr *ctx, __u64 cg, __u16 family, __u8 *addr, __u16 port)
{
	int udp = ctx->type == SOCK_DGRAM || ctx->protocol == IPPROTO_UDP;
	if (port == 0 && !udp)
		return 1;
	struct member *m = task_member(cg);
	if (!m || !(m->flags & POLICY_BIND))
		return 1;
	if (udp && port == 0 && is_wildcard(addr) && udp_rebind(ctx, m, family, addr))
		return 1;
	__u32 policy = 0;
	/* UDP to port 0: the kernel picks the port, the address is what it serves on */
	__u16 verdict = bind_verdict(m, addr, port, port == 0, &policy);
	if (verdict == ACTION_NONE)
		return 1;
	bind_violation(cg, m, SOURCE_CGROUP, policy, verdict, BIND_OP_BIND, family, addr, port, ctx->protocol, 1);
	return verdict == ACTION_DENY ? 0 : 1;
}

static __always_inline void bind_report(struct bpf_sock_addr *ctx, __u64 cg, __u16 family, const __u8 *addr, __u16 port)
{
	struct bind_event *e = RESERVE(struct bind_event, DROP_RING_BIND);
	if (!e)
		return;
	fill_hdr(&e->hdr, cg, KIND_BIND, SOURCE_CGROUP);
	e->family = family;
	e->port = port;
	e->protocol = ctx->protocol;
	e->type = ctx->type;
	__builtin_memcpy(e->addr, addr, 16);
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int on_bind4(struct bpf_sock_addr *ctx)
{
	__u64 cg = bpf_get_current_cgroup_id();
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 mapped[16];
	ipv4_mapped(mapped, ctx->user_ip4);
	int ret = bind_check(ctx, cg, AF_INET, mapped, port);
	if (ret && bpf_map_lookup_elem(&watched, &cg))
		bind_report(ctx, cg, AF_INET, mapped, port);
	return ret;
}

static __always_inline int on_bind6(struct bpf_sock_addr *ctx)
{
	__u64 cg = bpf_get_current_cgroup_id();
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 addr[16];
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
	__builtin_memcpy(&addr[0], &w0, 4);
	__builtin_memcpy(&addr[4], &w1, 4);
	__builtin_memcpy(&addr[8], &w2, 4);
	__builtin_memcpy(&addr[12], &w3, 4);
	int ret = bind_check(ctx, cg, AF_INET6, addr, port);
	if (ret && bpf_map_lookup_elem(&watched, &cg))
		bind_report(ctx, cg, AF_INET6, addr, port);
	return ret;
}

/* device_violation reports binding a socket to another interface, by name
 * or (a name of zeros) by index. */
static __always_inline void device_violation(__u64 cg, struct member *m, __u16 source, __u32 policy, __u16 verdict,
					     union ifname *name, __u32 ifindex)
{
	struct report_record *r = report_record(1, RULE_BIND_INTERFACES, verdict);
	if (!r)
		return;
	struct violation_event *v = violation_start(&r->ve, cg, source, policy, RULE_BIND_INTERFACES, verdict, 1);
	v->op = BIND_OP_DEVICE;
	v->port = 0;
	if (ifindex) {
		__builtin_memcpy(v->addr, &ifindex, 4); /* no name: the index, see violation_event */
	} else {
		__builtin_memcpy(v->path, name->c, IFNAMSIZ);
		v->path_kind = PATH_RELATIVE;
		__u32 n = 0;
		for (int i = 0; i < IFNAMSIZ; i++)
			if (name->c[i])
				n = i + 1;
		v->path_len = n;
	}
	violation_submit(v, m->owner);
	report_done(r, 1);
}

/* strictest_bind is the strictest bind action of m's policies: what a
 * binding the hook cannot read gets. */
static __always_inline __u16 strictest_bind(struct member *m, __u32 *policy)
{
	__u16 verdict = ACTION_NONE;
	for (int i = 0; i < MAX_MEMBER_POLICIES; i++) {
		if (i >= m->n)
			break;
		__u32 id = m->ids[i];
		struct policy *p = bpf_map_lookup_elem(&policies, &id);
		if (p && (p->flags & POLICY_BIND) && p->bind_action > verdict) {
			verdict = p->bind_action;
			*policy = id;
		}
	}
	return verdict;
}

/* on_setsockopt refuses SO_BINDTODEVICE and SO_BINDTOIFINDEX to an
 * interface outside the rule. It runs for every setsockopt on the node. */
static __always_inline int on_setsockopt(struct bpf_sockopt *ctx)
{
	int device = ctx->level == SOL_SOCKET && (ctx->optname == SO_BINDTODEVICE || ctx->optname == SO_BINDTOIFINDEX);
	if (ctx->optlen > SOCKOPT_PAGE) {
		/* Only the first page is seen here; with optlen 0 the kernel
		 * uses the caller's own buffer, which nobody judged: a device
		 * binding that long is refused under the rule. */
		if (device) {
			__u64 cg = bpf_get_current_cgroup_id();
			struct member *m = task_member(cg);
			__u32 policy = 0;
			if (m && (m->flags & POLICY_BIND) && strictest_bind(m, &policy) == ACTION_DENY) {
				union ifname none = {};
				device_violation(cg, m, SOURCE_CGROUP, policy, ACTION_DENY, &none, 0);
				return 0;
			}
		}
		ctx->optlen = 0;
		return 1;
	}
	if (!device)
		return 1;
	__u64 cg = bpf_get_current_cgroup_id();
	struct member *m = task_member(cg);
	if (!m || !(m->flags & POLICY_BIND))
		return 1;

	union ifname name = {};
	__u32 ifindex = 0;
	__u8 *p = ctx->optval, *end = ctx->optval_end;
	if (ctx->optname == SO_BINDTOIFINDEX) {
		if (p + 4 > end)
			return 1; /* the kernel refuses it */
		ifindex = *(__u32 *)p;
		if (!ifindex)
			return 1; /* unbinding */
	} else {
		int optlen = ctx->optlen;
		for (int i = 0; i < IFNAMSIZ - 1; i++) {
			if (i >= optlen || p + i + 1 > end || p[i] == 0)
				break;
			name.c[i] = p[i];
		}
		if (!name.c[0])
			return 1; /* unbinding */
	}
	__u32 policy = 0;
	__u16 verdict = device_verdict(m, &name, ifindex, &policy);
	if (verdict == ACTION_NONE)
		return 1;
	device_violation(cg, m, SOURCE_CGROUP, policy, verdict, &name, ifindex);
	return verdict == ACTION_DENY ? 0 : 1;
}

/* lsm_socket_setsockopt closes, on the full tier, the route the cgroup
 * setsockopt hook does not see: the kernel runs that hook for 64-bit
 * syscalls only, so a 32-bit (ia32) setsockopt binding a socket to a
 * device is refused under the rule (the LSM hook gets no option value to
 * judge the device by). */
static __always_inline int lsm_socket_setsockopt(int level, int optname)
{
	if (level != SOL_SOCKET || (optname != SO_BINDTODEVICE && optname != SO_BINDTOIFINDEX) || !in_compat_syscall())
		return 0;
	__u64 cg = bpf_get_current_cgroup_id();
	struct member *m = task_member(cg);
	__u32 policy = 0;
	if (!m || !(m->flags & POLICY_BIND))
		return 0;
	__u16 verdict = strictest_bind(m, &policy);
	if (verdict == ACTION_NONE)
		return 0;
	union ifname none = {};
	device_violation(cg, m, SOURCE_LSM, policy, verdict, &none, 0);
	return verdict == ACTION_DENY ? -EPERM : 0;
}

/* receives_unjudged reports whether a socket of this family, type and
 * protocol can receive traffic the rule cannot judge by a bound address:
 * raw and packet sockets, and SCTP, whose bindx and multi-homing bind
 * paths pass no hook. */
static __always_inline int receives_unjudged(int family, int type, int protocol)
{
	return family == AF_PACKET || ((family == AF_INET || family == AF_INET6) && (type == SOCK_RAW || protocol == IPPROTO_SCTP));
}

/* socket_verdict judges creating such a socket under the rule. */
static __always_inline __u16 socket_verdict(__u64 cg, __u16 source, int family, int protocol)
{
	struct member *m = task_member(cg);
	__u32 policy = 0;
	if (!m || !(m->flags & POLICY_BIND))
		return ACTION_NONE;
	__u16 verdict = strictest_bind(m, &policy);
	if (verdict != ACTION_NONE) {
		__u8 none[16] = {};
		bind_violation(cg, m, source, policy, verdict, BIND_OP_SOCKET, family, none, 0, protocol, 1);
	}
	return verdict;
}

/* on_sock_create (cgroup/sock_create, every tier: inet and inet6 sockets
 * only) refuses raw and SCTP sockets to a container under the rule. */
static __always_inline int on_sock_create(struct bpf_sock *sk)
{
	if (!receives_unjudged(sk->family, sk->type, sk->protocol))
		return 1;
	return socket_verdict(bpf_get_current_cgroup_id(), SOURCE_CGROUP, sk->family, sk->protocol) == ACTION_DENY ? 0 : 1;
}

/* lsm_socket_create refuses them on the full tier, packet sockets too. */
static __always_inline int lsm_socket_create(int family, int type, int protocol, int kern)
{
	if (kern || !receives_unjudged(family, type, protocol))
		return 0;
	return socket_verdict(bpf_get_current_cgroup_id(), SOURCE_LSM, family, protocol) == ACTION_DENY ? -EPERM : 0;
}

#define MAX_EXT_HEADERS 8
#define MAX_TRANSPORT_OFF 2048

/* ipv6_transport walks the extension headers after an IPv6 header (its
 * first next-header nh, at offset off) and returns the offset of a TCP
 * header, or 0 when the packet carries none (another transport, a later
 * fragment, too many headers). */
static __always_inline __u32 ipv6_transport(struct __sk_buff *skb, __u8 nh, __u32 off)
{
	for (int i = 0; i < MAX_EXT_HEADERS; i++) {
		__u8 h[4];
		if (nh == IPPROTO_TCP)
			return off;
		if (off > MAX_TRANSPORT_OFF || bpf_skb_load_bytes(skb, off, h, 4))
			return 0;
		switch (nh) {
		case 0:  /* hop-by-hop options */
		case 43: /* routing */
		case 60: /* destination options */
			off += ((__u32)h[1] + 1) * 8;
			break;
		case 44: /* fragment: only the first carries the TCP header */
			if (((__u16)h[2] << 8 | h[3]) & 0xfff8)
				return 0;
			off += 8;
			break;
		case 51: /* authentication header */
			off += ((__u32)h[1] + 2) * 4;
			break;
		default:
			return 0;
		}
		nh = h[0];
	}
	return 0;
}

/* on_skb_ingress drops a connection request (TCP SYN) that reaches a
 * listener of a selected container on an address or port outside its rule:
 * the listener came to exist without a bind the hooks could refuse. Runs in
 * packet context: no acting process, only the socket's cgroup. */
static __always_inline int on_skb_ingress(struct __sk_buff *skb)
{
	__u64 cg = bpf_skb_cgroup_id(skb);
	struct member *m = skb_member(skb, cg);
	if (!m || !(m->flags & POLICY_BIND))
		return 1;

	__u8 addr[16];
	__u32 thoff;
	__u16 family;
	if (skb->protocol == bpf_htons(0x0800)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) || ip.protocol != IPPROTO_TCP)
			return 1;
		thoff = ip.ihl * 4;
		ipv4_mapped(addr, ip.daddr);
		family = AF_INET;
	} else if (skb->protocol == bpf_htons(0x86DD)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return 1;
		thoff = ipv6_transport(skb, ip6.nexthdr, sizeof(ip6));
		if (!thoff)
			return 1;
		__builtin_memcpy(addr, &ip6.daddr, 16);
		family = AF_INET6;
	} else {
		return 1;
	}
	__u8 flags = 0;
	__u16 dport = 0;
	if (thoff > MAX_TRANSPORT_OFF || bpf_skb_load_bytes(skb, thoff + 13, &flags, 1) ||
	    bpf_skb_load_bytes(skb, thoff + 2, &dport, 2))
		return 1;
	if (!(flags & TCP_FLAG_SYN) || (flags & TCP_FLAG_ACK))
		return 1;
	__u16 port = bpf_ntohs(dport);
	__u32 policy = 0;
	__u16 verdict = bind_verdict(m, addr, port, 0, &policy);
	if (verdict == ACTION_NONE)
		return 1;
	bind_violation(cg, m, SOURCE_CGROUP, policy, verdict, BIND_OP_CONNECTION, family, addr, port, IPPROTO_TCP, 0);
	return verdict == ACTION_DENY ? 0 : 1;
}

/* lsm_socket_listen refuses, on the full tier, a listen on a socket bound
 * outside the rule, or not bound at all (the kernel would bind it to the
 * wildcard address and an ephemeral port). */
static __always_inline int lsm_socket_listen(struct socket *sock)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct member *m = task_member(cg);
	if (!m || !(m->flags & POLICY_BIND))
		return 0;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u8 addr[16];
	if (family == AF_INET)
		ipv4_mapped(addr, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
	else if (family == AF_INET6)
		BPF_CORE_READ_INTO(&addr, sk, __sk_common.skc_v6_rcv_saddr);
	else
		return 0;
	__u16 port = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u32 policy = 0;
	__u16 verdict = bind_verdict(m, addr, port, 0, &policy);
	if (verdict == ACTION_NONE)
		return 0;
	bind_violation(cg, m, SOURCE_LSM, policy, verdict, BIND_OP_LISTEN, family, addr, port, BPF_CORE_READ(sk, sk_protocol), 1);
	return verdict == ACTION_DENY ? -EPERM : 0;
}
