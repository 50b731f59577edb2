package vmtests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// KernelModules are the modules one kernel's VM loads before the tests.
type KernelModules struct {
	// Release is the kernel release (uname -r) they belong to.
	Release string
	// Files are uncompressed .ko files on the host, dependencies before the
	// modules that need them. Modules built into the kernel are left out.
	Files []string
}

// modulePathRegexp matches a file of a kernel package's module tree, in
// both the /lib and the merged /usr/lib layout: submatch 1 is the release,
// 2 the path below it.
var modulePathRegexp = regexp.MustCompile(`^(?:usr/)?lib/modules/([^/]+)/(.+)$`)

// moduleSuffixes are the file name endings of a module, compressed or not.
var moduleSuffixes = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"}

// ModuleName returns the name the kernel knows the module file p by (the
// base name without its .ko ending, with dashes as underscores), or "" when
// p is no module file.
func ModuleName(p string) string {
	base := path.Base(p)
	for _, s := range moduleSuffixes {
		if name, ok := strings.CutSuffix(base, s); ok && name != "" {
			return normalizeModule(name)
		}
	}
	return ""
}

// normalizeModule spells a module name as the kernel does: modprobe treats
// dashes and underscores alike.
func normalizeModule(name string) string { return strings.ReplaceAll(name, "-", "_") }

// ModuleDepends returns the modules the .ko file at p depends on, from the
// depends= entry of its .modinfo section.
func ModuleDepends(p string) ([]string, error) {
	f, err := elf.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("%s: no .modinfo section", p)
	}
	info, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("%s: .modinfo: %w", p, err)
	}
	var deps []string
	for _, kv := range bytes.Split(info, []byte{0}) {
		list, ok := bytes.CutPrefix(kv, []byte("depends="))
		if !ok {
			continue
		}
		for _, d := range strings.Split(string(list), ",") {
			if d = strings.TrimSpace(d); d != "" {
				deps = append(deps, normalizeModule(d))
			}
		}
	}
	return deps, nil
}

// moduleCache is the directory where one kernel package's resolved modules
// are kept: NAME.ko with NAME.deps (its dependencies, one a line) for a
// loadable module, NAME.builtin for one built into the kernel, and the file
// release. A .deps or .builtin file is written last and marks NAME done.
type moduleCache string

// resolve walks names and their dependencies through the cache. It returns
// the cached loadable modules in load order and the names not resolved yet.
func (c moduleCache) resolve(names []string) (order, missing []string, err error) {
	state := map[string]int{} // 1 while visiting, 2 once done
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle: %s", strings.Join(append(chain, name), " -> "))
		case 2:
			return nil
		}
		state[name] = 1
		defer func() { state[name] = 2 }()
		if _, err := os.Stat(c.file(name, ".builtin")); err == nil {
			return nil
		}
		b, err := os.ReadFile(c.file(name, ".deps"))
		if errors.Is(err, os.ErrNotExist) {
			missing = append(missing, name)
			return nil
		}
		if err != nil {
			return err
		}
		for _, d := range strings.Fields(string(b)) {
			if err := visit(d, append(chain, name)); err != nil {
				return err
			}
		}
		order = append(order, name)
		return nil
	}
	for _, n := range names {
		if err := visit(normalizeModule(n), nil); err != nil {
			return nil, nil, err
		}
	}
	return order, missing, nil
}

func (c moduleCache) file(name, suffix string) string {
	return filepath.Join(string(c), name+suffix)
}

// modules returns the modules named (and what they depend on) for kernel k,
// taking them out of its .deb the first time and from the cache after.
// Modules the kernel has built in need no loading and are left out; a name
// the package has neither as a module nor built in is an error.
func (f *kernelFetcher) modules(ctx context.Context, k Kernel, names []string) (KernelModules, error) {
	cache := moduleCache(filepath.Join(f.kernelsDir(), k.Package, "modules"))
	for {
		order, missing, err := cache.resolve(names)
		if err != nil {
			return KernelModules{}, fmt.Errorf("kernel %s: %w", k.Series, err)
		}
		if len(missing) == 0 {
			return cache.result(order)
		}
		// Each pass settles every missing name, so the loop ends once no
		// new dependency turns up.
		if err := f.extractModules(ctx, k, cache, missing); err != nil {
			return KernelModules{}, fmt.Errorf("kernel %s: modules: %w", k.Series, err)
		}
	}
}

// result turns a load order into host files and the release.
func (c moduleCache) result(order []string) (KernelModules, error) {
	rel, err := os.ReadFile(filepath.Join(string(c), "release"))
	if err != nil {
		if len(order) == 0 {
			return KernelModules{}, nil
		}
		return KernelModules{}, err
	}
	km := KernelModules{Release: strings.TrimSpace(string(rel))}
	for _, name := range order {
		km.Files = append(km.Files, c.file(name, ".ko"))
	}
	return km, nil
}

// extractModules reads the kernel's .deb once and settles every name in
// want: its .ko goes into the cache with its dependency list, or it is
// marked built in, or it is reported missing.
func (f *kernelFetcher) extractModules(ctx context.Context, k Kernel, cache moduleCache, want []string) error {
	deb, err := f.download(ctx, k.Series, k.Package)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(string(cache), 0o755); err != nil {
		return err
	}
	wanted := map[string]bool{}
	for _, n := range want {
		wanted[n] = true
	}
	found := map[string]bool{}
	builtin := map[string]bool{}
	release := ""
	err = walkDeb(ctx, deb, func(h *tar.Header, r io.Reader) error {
		m := modulePathRegexp.FindStringSubmatch(strings.TrimPrefix(h.Name, "./"))
		if m == nil || h.Typeflag != tar.TypeReg {
			return nil
		}
		if release != "" && m[1] != release {
			return fmt.Errorf("%s holds modules of two releases, %s and %s", filepath.Base(deb), release, m[1])
		}
		release = m[1]
		if m[2] == "modules.builtin" {
			return readBuiltin(r, builtin)
		}
		name := ModuleName(m[2])
		if !wanted[name] || !strings.HasPrefix(m[2], "kernel/") {
			return nil
		}
		found[name] = true
		return writeModule(ctx, r, path.Base(m[2]), cache.file(name, ".ko"))
	})
	if err != nil {
		return err
	}
	if release != "" {
		if err := writeFileAtomic(filepath.Join(string(cache), "release"), []byte(release+"\n")); err != nil {
			return err
		}
	}
	var absent []string
	for _, name := range want {
		switch {
		case found[name]:
			deps, err := ModuleDepends(cache.file(name, ".ko"))
			if err != nil {
				return err
			}
			if err := writeFileAtomic(cache.file(name, ".deps"), []byte(strings.Join(deps, "\n"))); err != nil {
				return err
			}
		case builtin[name]:
			if err := writeFileAtomic(cache.file(name, ".builtin"), nil); err != nil {
				return err
			}
		default:
			absent = append(absent, name)
		}
	}
	if len(absent) > 0 {
		sort.Strings(absent)
		return fmt.Errorf("%s has no module %s, loadable or built in", filepath.Base(deb), strings.Join(absent, ", "))
	}
	return nil
}

// readBuiltin adds the names of the modules listed in a modules.builtin
// file to set.
func readBuiltin(r io.Reader, set map[string]bool) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	for _, line := range strings.Fields(string(b)) {
		if name := ModuleName(line); name != "" {
			set[name] = true
		}
	}
	return nil
}

// writeModule stores the module file named base, read from r, uncompressed
// at dst.
func writeModule(ctx context.Context, r io.Reader, base, dst string) error {
	var tool string
	switch {
	case strings.HasSuffix(base, ".ko"):
		return writeStreamAtomic(dst, r)
	case strings.HasSuffix(base, ".ko.gz"):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("%s: %w", base, err)
		}
		return writeStreamAtomic(dst, zr)
	case strings.HasSuffix(base, ".ko.xz"):
		tool = "xz"
	case strings.HasSuffix(base, ".ko.zst"):
		tool = "zstd"
	}
	if _, err := exec.LookPath(tool); err != nil {
		return fmt.Errorf("%s: %w (install %s to unpack it)", base, err, map[string]string{"xz": "xz-utils", "zstd": "zstd"}[tool])
	}
	cmd := exec.CommandContext(ctx, tool, "-dc")
	cmd.Stdin = r
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s -dc %s: %w: %s", tool, base, err, strings.TrimSpace(stderr.String()))
	}
	return writeStreamAtomic(dst, &out)
}

// writeFileAtomic writes data to dst through a temporary file, so that an
// interrupted run never leaves a partial file behind.
func writeFileAtomic(dst string, data []byte) error {
	return writeStreamAtomic(dst, bytes.NewReader(data))
}

// writeStreamAtomic is writeFileAtomic for a stream.
func writeStreamAtomic(dst string, r io.Reader) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
