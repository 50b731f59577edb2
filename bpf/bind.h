/* Socket binds, from the cgroup sock_addr hooks attached at the cgroup v2
 * root: they see the address after the kernel validated it and before the
 * bind happens, on every tier. Returning 1 lets the bind proceed. */
#pragma once
#include "common.h"

#define AF_INET 2
#define AF_INET6 10

static __always_inline struct bind_event *bind_event_start(struct bpf_sock_addr *ctx)
{
	__u64 cg = current_watched();
	if (!cg)
		return 0;
	struct bind_event *e = RESERVE(struct bind_event, DROP_RING_BIND);
	if (!e)
		return 0;
	fill_hdr(&e->hdr, cg, KIND_BIND, SOURCE_CGROUP);
	e->port = bpf_ntohs((__u16)ctx->user_port);
	e->protocol = ctx->protocol;
	e->type = ctx->type;
	__builtin_memset(e->addr, 0, sizeof(e->addr));
	return e;
}

static __always_inline int on_bind4(struct bpf_sock_addr *ctx)
{
	struct bind_event *e = bind_event_start(ctx);
	if (!e)
		return 1;
	e->family = AF_INET;
	__u32 ip = ctx->user_ip4;
	__builtin_memcpy(e->addr, &ip, 4);
	bpf_ringbuf_submit(e, 0);
	return 1;
}

static __always_inline int on_bind6(struct bpf_sock_addr *ctx)
{
	struct bind_event *e = bind_event_start(ctx);
	if (!e)
		return 1;
	e->family = AF_INET6;
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
	__builtin_memcpy(&e->addr[0], &w0, 4);
	__builtin_memcpy(&e->addr[4], &w1, 4);
	__builtin_memcpy(&e->addr[8], &w2, 4);
	__builtin_memcpy(&e->addr[12], &w3, 4);
	bpf_ringbuf_submit(e, 0);
	return 1;
}
