package vmtests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestModuleName(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{in: "kernel/fs/overlayfs/overlay.ko", want: "overlay"},
		{in: "overlay.ko.xz", want: "overlay"},
		{in: "kernel/net/br-netfilter.ko.zst", want: "br_netfilter"},
		{in: "x.ko.gz", want: "x"},
		{in: "modules.builtin", want: ""},
		{in: ".ko", want: ""},
		{in: "overlay.kox", want: ""},
	}
	for _, tc := range tests {
		if got := ModuleName(tc.in); got != tc.want {
			t.Errorf("ModuleName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestModuleCacheResolve(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"a.deps": "b\nbuilt", "b.deps": "", "built.builtin": "",
		"top.deps": "a\nb\nabsent", "loop1.deps": "loop2", "loop2.deps": "loop1",
	} {
		writeFile(t, dir, name, content, 0o644)
	}
	c := moduleCache(dir)
	tests := []struct {
		name        string
		in          []string
		wantOrder   string
		wantMissing string
		wantErr     string
	}{
		{name: "none", in: nil},
		{name: "dependencies first", in: []string{"a"}, wantOrder: "b,a"},
		{name: "shared dependency once", in: []string{"b", "a"}, wantOrder: "b,a"},
		{name: "built in", in: []string{"built"}},
		{name: "missing dependency", in: []string{"top"}, wantOrder: "b,a,top", wantMissing: "absent"},
		{name: "not cached", in: []string{"new-one"}, wantMissing: "new_one"},
		{name: "cycle", in: []string{"loop1"}, wantErr: "loop1 -> loop2 -> loop1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			order, missing, err := c.resolve(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(order, ","); got != tc.wantOrder {
				t.Errorf("order = %q, want %q", got, tc.wantOrder)
			}
			if got := strings.Join(missing, ","); got != tc.wantMissing {
				t.Errorf("missing = %q, want %q", got, tc.wantMissing)
			}
		})
	}
}

// fakeModule writes a small ELF file whose .modinfo says it depends on deps:
// the test binary with every other section dropped.
func fakeModule(tb testing.TB, dst, deps string) {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	info := writeFile(tb, tb.TempDir(), "modinfo", "license=GPL\x00depends="+deps+"\x00vermagic=x\x00", 0o644)
	out, err := exec.Command("objcopy", "-j", ".modinfo", "--add-section", ".modinfo="+info, self, dst).CombinedOutput()
	if err != nil {
		tb.Fatalf("objcopy: %v: %s", err, out)
	}
}

func TestFetcherModules(t *testing.T) {
	for _, tool := range []string{"dpkg-deb", "objcopy", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	const pkg, rel = "linux-image-6.1.0-9-amd64", "6.1.0-9-amd64"
	src := t.TempDir()
	mods := filepath.Join(src, "lib", "modules", rel)
	for _, d := range []string{"DEBIAN", "lib/modules/" + rel + "/kernel/fs/a", "lib/modules/" + rel + "/kernel/lib"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, src, "DEBIAN/control", "Package: "+pkg+"\nVersion: 1\nArchitecture: amd64\nMaintainer: x <x@example.com>\nDescription: test\n", 0o644)
	writeFile(t, mods, "modules.builtin", "kernel/fs/builtin-fs.ko\n", 0o644)
	fakeModule(t, filepath.Join(mods, "kernel/fs/a/a-mod.ko"), "b_lib,builtin_fs")
	fakeModule(t, filepath.Join(mods, "kernel/lib/b_lib.ko"), "")
	if out, err := exec.Command("xz", filepath.Join(mods, "kernel/lib/b_lib.ko")).CombinedOutput(); err != nil {
		t.Fatalf("xz: %v: %s", err, out)
	}
	cache := t.TempDir()
	deb := filepath.Join(cache, "debs", pkg+"_1_amd64.deb")
	if err := os.MkdirAll(filepath.Dir(deb), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", src, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v: %s", err, out)
	}

	f := &kernelFetcher{cacheDir: cache, logf: t.Logf}
	k := Kernel{Series: "6.1", Package: pkg}
	got, err := f.modules(context.Background(), k, []string{"a-mod", "builtin-fs"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got.Files {
		names = append(names, ModuleName(p))
		if deps, err := ModuleDepends(p); err != nil {
			t.Errorf("%s: %v", p, err)
		} else if ModuleName(p) == "a_mod" && strings.Join(deps, ",") != "b_lib,builtin_fs" {
			t.Errorf("a_mod depends on %q", deps)
		}
	}
	if got.Release != rel || strings.Join(names, ",") != "b_lib,a_mod" {
		t.Errorf("modules = %s %q, want %s b_lib,a_mod", got.Release, names, rel)
	}

	// A second call is served from the cache, without the package.
	if err := os.Rename(deb, deb+".away"); err != nil {
		t.Fatal(err)
	}
	again, err := f.modules(context.Background(), k, []string{"a_mod"})
	if err != nil || strings.Join(again.Files, ",") != strings.Join(got.Files, ",") {
		t.Errorf("cached modules = %+v, %v; want %+v", again, err, got)
	}

	// A module the package lacks is an error naming it.
	if err := os.Rename(deb+".away", deb); err != nil {
		t.Fatal(err)
	}
	if _, err := f.modules(context.Background(), k, []string{"nosuch"}); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("missing module: error = %v", err)
	}
}
