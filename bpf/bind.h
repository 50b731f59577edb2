/* Socket binds and the interface-binding rule.
 *
 * The cgroup sock_addr hooks (attached at the cgroup v2 root, every tier)
 * see an explicit bind after the kernel validated the address and before it
 * happens: they report it and refuse it when a policy forbids it. A listen
 * on a socket nobody bound binds it implicitly to the wildcard address and
 * an ephemeral port without passing those hooks: the full tier refuses the
 * listen in its LSM hook; every tier also drops, at cgroup ingress, each
 * connection request that reaches a listener outside the rule. A bind to
 * port 0 (the kernel picks the port, as clients do) is left to that listen
 * check, so outbound connections and DNS over UDP keep working. */
#pragma once
#include "enforce.h"

#define AF_INET 2
#define AF_INET6 10
#define SOL_SOCKET 1
#define SO_BINDTODEVICE 25
#define SO_BINDTOIFINDEX 62
#define IPPROTO_TCP 6
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10
#define SOCKOPT_PAGE 4096

/* bind_check judges an explicit bind and returns the hook's answer. */
static __always_inline int bind_check(struct bpf_sock_addr *ctx, __u64 cg, __u16 family, const __u8 *addr, __u16 port)
{
	if (port == 0)
		return 1;
	struct member *m = member_of(cg);
	if (!m || !(m->flags & POLICY_BIND))
		return 1;
	__u32 policy = 0;
	__u16 verdict = bind_verdict(m, addr, port, &policy);
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
	__u64 cg = current_watched();
	if (!cg)
		return 1;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 mapped[16];
	ipv4_mapped(mapped, ctx->user_ip4);
	int ret = bind_check(ctx, cg, AF_INET, mapped, port);
	if (ret) {
		__u8 addr[16] = {};
		__u32 ip = ctx->user_ip4;
		__builtin_memcpy(addr, &ip, 4);
		bind_report(ctx, cg, AF_INET, addr, port);
	}
	return ret;
}

static __always_inline int on_bind6(struct bpf_sock_addr *ctx)
{
	__u64 cg = current_watched();
	if (!cg)
		return 1;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 addr[16];
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
	__builtin_memcpy(&addr[0], &w0, 4);
	__builtin_memcpy(&addr[4], &w1, 4);
	__builtin_memcpy(&addr[8], &w2, 4);
	__builtin_memcpy(&addr[12], &w3, 4);
	int ret = bind_check(ctx, cg, AF_INET6, addr, port);
	if (ret)
		bind_report(ctx, cg, AF_INET6, addr, port);
	return ret;
}

/* on_setsockopt refuses SO_BINDTODEVICE and SO_BINDTOIFINDEX to an
 * interface outside the rule. It runs for every setsockopt on the node. */
static __always_inline int on_setsockopt(struct bpf_sockopt *ctx)
{
	if (ctx->optlen > SOCKOPT_PAGE) {
		ctx->optlen = 0; /* we see one page only: let the kernel use the caller's buffer */
		return 1;
	}
	if (ctx->level != SOL_SOCKET || (ctx->optname != SO_BINDTODEVICE && ctx->optname != SO_BINDTOIFINDEX))
		return 1;
	__u64 cg = current_watched();
	if (!cg)
		return 1;
	struct member *m = member_of(cg);
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
	struct violation_event *v = violation_start(cg, SOURCE_CGROUP, policy, RULE_BIND_INTERFACES, verdict);
	if (v) {
		v->op = BIND_OP_DEVICE;
		v->port = 0;
		if (ifindex) {
			__builtin_memcpy(v->addr, &ifindex, 4); /* no name: the index, see violation_event */
		} else {
			__builtin_memcpy(v->path, name.c, IFNAMSIZ);
			v->path_kind = PATH_RELATIVE;
			__u32 n = 0;
			for (int i = 0; i < IFNAMSIZ; i++)
				if (name.c[i])
					n = i + 1;
			v->path_len = n;
		}
		violation_submit(v, m->owner);
	}
	return verdict == ACTION_DENY ? 0 : 1;
}

/* on_skb_ingress drops a connection request (TCP SYN) that reaches a
 * listener of a selected container on an address or port outside its rule:
 * the listener came to exist without a bind the hooks could refuse. Runs in
 * packet context: no acting process, only the socket's cgroup. */
static __always_inline int on_skb_ingress(struct __sk_buff *skb)
{
	__u64 cg = bpf_skb_cgroup_id(skb);
	struct member *m = member_of(cg);
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
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) || ip6.nexthdr != IPPROTO_TCP)
			return 1;
		thoff = sizeof(ip6);
		__builtin_memcpy(addr, &ip6.daddr, 16);
		family = AF_INET6;
	} else {
		return 1;
	}
	__u8 flags = 0;
	__u16 dport = 0;
	if (thoff > 60 || bpf_skb_load_bytes(skb, thoff + 13, &flags, 1) ||
	    bpf_skb_load_bytes(skb, thoff + 2, &dport, 2))
		return 1;
	if (!(flags & TCP_FLAG_SYN) || (flags & TCP_FLAG_ACK))
		return 1;
	__u16 port = bpf_ntohs(dport);
	__u32 policy = 0;
	__u16 verdict = bind_verdict(m, addr, port, &policy);
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
	__u64 cg = current_watched();
	if (!cg)
		return 0;
	struct member *m = member_of(cg);
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
	__u16 verdict = bind_verdict(m, addr, port, &policy);
	if (verdict == ACTION_NONE)
		return 0;
	bind_violation(cg, m, SOURCE_LSM, policy, verdict, BIND_OP_LISTEN, family, addr, port, BPF_CORE_READ(sk, sk_protocol), 1);
	return verdict == ACTION_DENY ? -EPERM : 0;
}
