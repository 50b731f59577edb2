package kernel

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/ringfence/ringfence/bpf"
	"github.com/ringfence/ringfence/enforce"
)

func TestDecideTier(t *testing.T) {
	cases := []struct {
		name       string
		lsms       []string
		loadErr    string
		want       Tier
		reasonHave string
	}{
		{"loads and active", []string{"capability", "bpf"}, "", TierFull, "load"},
		{"eperm and active", []string{"lockdown", "bpf"}, "operation not permitted", TierCgroupOnly, "operation not permitted"},
		{"loads but inactive", []string{"capability", "apparmor"}, "", TierCgroupOnly, "not in the active LSM list"},
		{"neither", []string{"capability"}, "EPERM", TierCgroupOnly, "not an active LSM"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, reason := decideTier(c.lsms, c.loadErr)
			if got != c.want || !strings.Contains(reason, c.reasonHave) {
				t.Fatalf("decideTier = %s, %q; want %s with %q", got, reason, c.want, c.reasonHave)
			}
		})
	}
}

// fakeKernelBTF is the BTF of a kernel whose only functions are funcs.
func fakeKernelBTF(t *testing.T, funcs ...string) *btf.Spec {
	t.Helper()
	b, err := btf.NewBuilder(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ret := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	for _, f := range funcs {
		if _, err := b.Add(&btf.Func{Name: f, Type: &btf.FuncProto{Return: ret}, Linkage: btf.GlobalFunc}); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestOptionalHooksSkipped configures the full tier for a kernel without
// the hooks added in 6.2 and 6.8 (as 6.1 without file_ioctl_compat's
// backport) and one with them: the missing
// ones are dropped and returned with their reason, nothing else is.
func TestOptionalHooksSkipped(t *testing.T) {
	for _, c := range []struct {
		name    string
		funcs   []string
		skipped []string
	}{
		{"6.1", []string{"bpf_lsm_inode_setattr"}, []string{"lsm/file_ioctl_compat", "lsm/file_truncate", "lsm/inode_file_setattr", "lsm/inode_remove_acl", "lsm/inode_set_acl"}},
		{"6.12", []string{"bpf_lsm_inode_setattr", "bpf_lsm_file_truncate", "bpf_lsm_inode_set_acl", "bpf_lsm_inode_remove_acl", "bpf_lsm_file_ioctl_compat"}, []string{"lsm/inode_file_setattr"}},
		{"6.18", []string{"bpf_lsm_inode_setattr", "bpf_lsm_file_truncate", "bpf_lsm_inode_set_acl", "bpf_lsm_inode_remove_acl", "bpf_lsm_file_ioctl_compat", "bpf_lsm_inode_file_setattr"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec, err := bpf.LoadSensor()
			if err != nil {
				t.Fatal(err)
			}
			skipped, err := configure(spec, TierFull, fakeKernelBTF(t, c.funcs...))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, h := range skipped {
				got = append(got, h.Hook)
				release := optionalHookRelease(strings.TrimPrefix(h.Hook, "lsm/"))
				if h.Attached || release == "" || !strings.Contains(h.Error, "absent from this kernel") || !strings.Contains(h.Error, "added in "+release) {
					t.Errorf("skipped hook %+v: want not attached, with its reason", h)
				}
				if _, ok := spec.Programs[h.Program]; ok {
					t.Errorf("%s skipped but still in the spec", h.Program)
				}
			}
			if strings.Join(got, ",") != strings.Join(c.skipped, ",") {
				t.Fatalf("skipped %v, want %v", got, c.skipped)
			}
			var lsm int
			for _, ps := range spec.Programs {
				if ps.Type == ebpf.LSM {
					lsm++
				}
			}
			if lsm == 0 {
				t.Fatal("no LSM program left for the full tier")
			}
		})
	}
}

func TestSyscallName(t *testing.T) {
	for nr, want := range map[uint32]string{257: "257", 0: "0", 1<<31 | 5: "ia32:5", 1<<31 | 85: "ia32:85"} {
		if got := SyscallName(nr); got != want {
			t.Errorf("SyscallName(%#x) = %q, want %q", nr, got, want)
		}
	}
}

// TestRootKeyBounds: a root is registered as its path with a final '/', up
// to the key's bytes and MAX_DEPTH names (the deepest an object too deep
// to walk whole can be placed by its top); past either, an error names it.
func TestRootKeyBounds(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("/d", n) }
	for _, c := range []struct {
		path    string
		key     string
		wantErr string
	}{
		{"/", "/", ""},
		{"/var/lib/c/rootfs", "/var/lib/c/rootfs/", ""},
		{"var/lib/../lib/c/", "/var/lib/c/", ""},
		{deep(32), deep(32) + "/", ""},
		{deep(33), "", "33 names deep, more than 32"},
		{"/" + strings.Repeat("a", 246), "/" + strings.Repeat("a", 246) + "/", ""},
		{"/" + strings.Repeat("a", 247), "", "longer than 248 bytes"},
	} {
		k, n, err := rootKey(enforce.RootFS{Dev: 7, Path: c.path})
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), c.path[:10]) {
				t.Errorf("rootKey(%.20q...): %v, want an error naming it: %s", c.path, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("rootKey(%.20q...): %v", c.path, err)
			continue
		}
		got := make([]byte, n)
		for i := range n {
			got[i] = byte(k.Path[i])
		}
		if string(got) != c.key || k.Dev != 7 || k.Prefixlen != uint32(32+8*n) {
			t.Errorf("rootKey(%.20q...) = %q dev %d prefix %d, want %q dev 7 prefix %d", c.path, got, k.Dev, k.Prefixlen, c.key, 32+8*len(c.key))
		}
	}
}

// TestHasStruct: a struct described once or twice (Debian's 6.18 overlay
// module has struct ovl_fs twice) is there; a name of another kind, or
// none, is not.
func TestHasStruct(t *testing.T) {
	b, err := btf.NewBuilder(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	u32 := &btf.Int{Name: "u32", Size: 4}
	for _, typ := range []btf.Type{
		&btf.Struct{Name: "once", Size: 4, Members: []btf.Member{{Name: "a", Type: u32}}},
		&btf.Struct{Name: "twice", Size: 4, Members: []btf.Member{{Name: "a", Type: u32}}},
		&btf.Struct{Name: "twice", Size: 8, Members: []btf.Member{{Name: "a", Type: u32}, {Name: "b", Type: u32, Offset: 32}}},
		&btf.Typedef{Name: "typedef_only", Type: u32},
	} {
		if _, err := b.Add(typ); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"once": true, "twice": true, "typedef_only": false, "absent": false} {
		if got := hasStruct(spec, name); got != want {
			t.Errorf("hasStruct(%q) = %v, want %v", name, got, want)
		}
	}
}
