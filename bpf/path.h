/* Turning kernel path objects into strings, in a per-CPU scratch buffer.
 * bpf_d_path gives the path as the process sees it (its root, its mounts) and
 * is allowed in the LSM hooks that take a struct path. Hooks that only get a
 * dentry walk d_parent instead, which yields the path inside its filesystem. */
#pragma once
#include "common.h"

#define MAX_DEPTH 32

struct path_scratch {
	char buf[PATH_LEN * 2];
	__u64 names[MAX_DEPTH]; /* const unsigned char *, as integers for the Go bindings */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct path_scratch);
} path_scratch SEC(".maps");

static __always_inline struct path_scratch *scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&path_scratch, &zero);
}

/* append_name writes "/name" at off in s->buf and returns the new offset. */
static __always_inline __u32 append_name(struct path_scratch *s, __u32 off, const unsigned char *name)
{
	if (off >= PATH_LEN - 1)
		return off;
	s->buf[off & (PATH_LEN - 1)] = '/';
	off++;
	long n = bpf_probe_read_kernel_str(&s->buf[off & (PATH_LEN - 1)], NAME_LEN, name);
	if (n > 1)
		off += n - 1;
	return off;
}

/* copy_out copies len bytes of s->buf into dst (PATH_LEN) and returns the stored length. */
static __always_inline __u32 copy_out(struct path_scratch *s, __u32 len, char *dst)
{
	if (len > PATH_LEN - 1)
		len = PATH_LEN - 1;
	s->buf[len & (PATH_LEN - 1)] = 0;
	bpf_probe_read_kernel(dst, PATH_LEN, s->buf);
	return len;
}

/* dentry_path writes the path of d inside its filesystem (no mount crossing). */
static __always_inline __u32 dentry_path(struct dentry *d, char *dst)
{
	struct path_scratch *s = scratch();
	if (!s)
		return 0;
	int n = 0;
	for (int i = 0; i < MAX_DEPTH; i++) {
		struct dentry *parent = BPF_CORE_READ(d, d_parent);
		if (!parent || parent == d)
			break;
		s->names[i] = (__u64)BPF_CORE_READ(d, d_name.name);
		n++;
		d = parent;
	}
	__u32 off = 0;
	for (int i = MAX_DEPTH - 1; i >= 0; i--) {
		if (i < n)
			off = append_name(s, off, (const unsigned char *)s->names[i]);
	}
	if (off == 0)
		s->buf[off++] = '/';
	return copy_out(s, off, dst);
}

/* d_path_child writes the path of dir (a struct path) followed by child's name when given. */
static __always_inline __u32 d_path_child(struct path *dir, struct dentry *child, char *dst)
{
	struct path_scratch *s = scratch();
	if (!s)
		return 0;
	long n = bpf_d_path(dir, s->buf, PATH_LEN);
	if (n <= 0)
		return 0;
	__u32 off = n - 1;
	if (child) {
		if (off == 1 && s->buf[0] == '/')
			off = 0; /* the directory is "/": avoid "//name" */
		off = append_name(s, off, BPF_CORE_READ(child, d_name.name));
	}
	return copy_out(s, off, dst);
}
