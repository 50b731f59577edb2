package vmtests

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Kernel is an unpacked Debian kernel image ready to be booted.
type Kernel struct {
	// Series is the kernel series asked for, such as "6.12".
	Series string
	// Package is the Debian package the image came from, such as
	// "linux-image-6.12.117+deb12-amd64".
	Package string
	// Image is the path of the unpacked vmlinuz file.
	Image string
}

// seriesPattern matches what a kernel series must look like: major.minor.
const seriesPattern = `^[0-9]+\.[0-9]+$`

// checkSeries reports whether series is of the form major.minor.
func checkSeries(series string) error {
	if !regexp.MustCompile(seriesPattern).MatchString(series) {
		return fmt.Errorf("kernel %q: want a series such as 6.1 or 6.12", series)
	}
	return nil
}

// packageRegexp matches the signed, generic amd64 image packages of a
// series, in both of Debian's naming schemes: linux-image-6.1.0-N-amd64 and
// linux-image-6.12.N+deb12-amd64 (or +bpo for backports). The ABI number is
// in submatch 1 or 2. Debug (-dbg), unsigned, rt and cloud packages do not
// match because the flavour must be exactly "amd64".
func packageRegexp(series string) *regexp.Regexp {
	return regexp.MustCompile(`^linux-image-` + regexp.QuoteMeta(series) +
		`(?:\.0-([0-9]+)|\.([0-9]+)\+(?:deb[0-9]+|bpo))-amd64$`)
}

// packageDescription is the human-readable form of packageRegexp, for errors.
func packageDescription(series string) string {
	return fmt.Sprintf("linux-image-%s.0-*-amd64 or linux-image-%s.*+debNN-amd64", series, series)
}

// packageABI returns the ABI number of a package name matched by re, or -1.
func packageABI(re *regexp.Regexp, name string) int {
	m := re.FindStringSubmatch(name)
	if m == nil {
		return -1
	}
	digits := m[1]
	if digits == "" {
		digits = m[2]
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return -1
	}
	return n
}

// SelectPackage picks, from the output of `apt-cache search` (lines of the
// form "NAME - DESCRIPTION"), the generic amd64 kernel image package of the
// given series with the highest ABI number.
func SelectPackage(series, searchOutput string) (string, error) {
	var names []string
	for _, line := range strings.Split(searchOutput, "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if name != "" {
			names = append(names, name)
		}
	}
	return pickHighest(series, names)
}

// pickHighest returns the name in names with the highest ABI for series.
func pickHighest(series string, names []string) (string, error) {
	if err := checkSeries(series); err != nil {
		return "", err
	}
	re := packageRegexp(series)
	best, bestABI := "", -1
	for _, name := range names {
		abi := packageABI(re, name)
		// On equal ABI numbers a stable release (+deb) beats a backport
		// (+bpo), whatever the order of the lines.
		if abi > bestABI || (abi == bestABI && abi >= 0 && strings.Contains(name, "+deb") && !strings.Contains(best, "+deb")) {
			best, bestABI = name, abi
		}
	}
	if bestABI < 0 {
		return "", fmt.Errorf("kernel %s: no package matches %s", series, packageDescription(series))
	}
	return best, nil
}

// backportsSource is the archive searched for a series the machine's own
// apt lists do not have, with an apt state of the fetcher's own under its
// cache (the machine's apt configuration is left as it is): Debian 13's
// backports carry the newer kernels (6.16 on), signed with keys that Debian
// 12's archive keyring already holds; apt checks them against that keyring
// alone (signed-by), not against every key the machine trusts.
const backportsSource = "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main"

// kernelFetcher downloads and unpacks kernels into a cache directory.
type kernelFetcher struct {
	cacheDir string
	logf     func(format string, args ...any)
	// updated records that apt-get update already ran in this process;
	// backportsUpdated, the same for the backports' own state.
	updated, backportsUpdated bool
	// fromBackports are the packages found in the backports.
	fromBackports map[string]bool
}

// fetch returns the unpacked kernel for series, downloading and unpacking
// it only when it is not already in the cache.
func (f *kernelFetcher) fetch(ctx context.Context, series string) (Kernel, error) {
	if err := checkSeries(series); err != nil {
		return Kernel{}, err
	}
	name, err := f.resolve(ctx, series)
	if err != nil {
		return Kernel{}, err
	}
	k := Kernel{Series: series, Package: name}
	if img, ok := f.unpackedImage(name); ok {
		k.Image = img
		return k, nil
	}
	deb, err := f.download(ctx, series, name)
	if err != nil {
		return Kernel{}, err
	}
	if err := f.unpack(ctx, deb, name); err != nil {
		return Kernel{}, fmt.Errorf("kernel %s: unpack %s: %w", series, filepath.Base(deb), err)
	}
	img, ok := f.unpackedImage(name)
	if !ok {
		return Kernel{}, fmt.Errorf("kernel %s: %s holds no boot/vmlinuz-*", series, filepath.Base(deb))
	}
	k.Image = img
	return k, nil
}

// resolve finds the package name for series from the apt lists. When the
// lists know no such package, an already-unpacked kernel of the series is
// used if there is one; otherwise apt-get update runs and the search is
// repeated.
func (f *kernelFetcher) resolve(ctx context.Context, series string) (string, error) {
	name, err := f.search(ctx, series)
	if err == nil {
		return name, nil
	}
	if cached, cerr := f.cachedPackage(series); cerr == nil {
		f.logf("kernel %s: apt lists have no match; using cached %s", series, cached)
		return cached, nil
	}
	if uerr := f.aptUpdate(ctx); uerr != nil {
		return "", fmt.Errorf("%w (and %v)", err, uerr)
	}
	if name, err = f.search(ctx, series); err == nil {
		return name, nil
	}
	name, berr := f.searchBackports(ctx, series)
	if berr != nil {
		return "", fmt.Errorf("%w; nor in %q: %v", err, backportsSource, berr)
	}
	f.logf("kernel %s: %s, from %q", series, name, backportsSource)
	return name, nil
}

// search runs apt-cache search for the series and selects a package; apt
// are the options of another apt state than the machine's, or none.
func (f *kernelFetcher) search(ctx context.Context, series string, apt ...string) (string, error) {
	pattern := "^linux-image-" + strings.ReplaceAll(series, ".", `\.`) + `[.]`
	out, err := runCommand(ctx, "", "apt-cache", append(apt, "search", "--names-only", pattern)...)
	if err != nil {
		return "", fmt.Errorf("kernel %s: %w", series, err)
	}
	return SelectPackage(series, string(out))
}

// searchBackports searches the backports for the series, updating their
// lists once per fetcher.
func (f *kernelFetcher) searchBackports(ctx context.Context, series string) (string, error) {
	apt, err := f.backportsApt()
	if err != nil {
		return "", err
	}
	if !f.backportsUpdated {
		f.backportsUpdated = true
		f.logf("kernel %s: not in this machine's apt lists; updating the lists of %q", series, backportsSource)
		if _, err := runCommand(ctx, "", "apt-get", append(apt, "update")...); err != nil {
			return "", err
		}
	}
	name, err := f.search(ctx, series, apt...)
	if err != nil {
		return "", err
	}
	if f.fromBackports == nil {
		f.fromBackports = map[string]bool{}
	}
	f.fromBackports[name] = true
	return name, nil
}

// backportsApt makes the backports' apt state under the cache, and returns
// the apt options that use it instead of the machine's sources, lists and
// package cache.
func (f *kernelFetcher) backportsApt() ([]string, error) {
	dir := filepath.Join(f.cacheDir, "apt")
	for _, d := range []string{"sources.list.d", "lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	list := filepath.Join(dir, "sources.list")
	if err := os.WriteFile(list, []byte(backportsSource+"\n"), 0o644); err != nil {
		return nil, err
	}
	return []string{
		"-o", "Dir::Etc::SourceList=" + list,
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(dir, "sources.list.d"),
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
	}, nil
}

// aptUpdate runs apt-get update at most once per fetcher.
func (f *kernelFetcher) aptUpdate(ctx context.Context) error {
	if f.updated {
		return nil
	}
	f.updated = true
	f.logf("running apt-get update")
	if _, err := runCommand(ctx, "", "apt-get", "update"); err != nil {
		return err
	}
	return nil
}

// kernelsDir is where unpacked kernels live, one directory per package.
func (f *kernelFetcher) kernelsDir() string { return filepath.Join(f.cacheDir, "kernels") }

// debsDir is where downloaded .deb files live.
func (f *kernelFetcher) debsDir() string { return filepath.Join(f.cacheDir, "debs") }

// unpackedImage returns the vmlinuz of an unpacked package, if present.
func (f *kernelFetcher) unpackedImage(name string) (string, bool) {
	imgs, _ := filepath.Glob(filepath.Join(f.kernelsDir(), name, "boot", "vmlinuz-*"))
	if len(imgs) == 0 {
		return "", false
	}
	sort.Strings(imgs)
	return imgs[len(imgs)-1], true
}

// cachedPackage returns the highest unpacked package of series in the cache.
func (f *kernelFetcher) cachedPackage(series string) (string, error) {
	entries, err := os.ReadDir(f.kernelsDir())
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range entries {
		if _, ok := f.unpackedImage(e.Name()); ok {
			names = append(names, e.Name())
		}
	}
	return pickHighest(series, names)
}

// download returns the cached .deb of the package, fetching it with
// apt-get download when it is missing. A failed download (stale lists, for
// instance) is retried once after apt-get update.
func (f *kernelFetcher) download(ctx context.Context, series, name string) (string, error) {
	if deb, ok := f.cachedDeb(name); ok {
		return deb, nil
	}
	if err := os.MkdirAll(f.debsDir(), 0o755); err != nil {
		return "", err
	}
	f.logf("kernel %s: downloading %s", series, name)
	var apt []string
	if f.fromBackports[name] {
		var err error
		if apt, err = f.backportsApt(); err != nil {
			return "", err
		}
	}
	_, err := runCommand(ctx, f.debsDir(), "apt-get", append(apt, "download", name)...)
	if err != nil && !f.updated && apt == nil {
		if uerr := f.aptUpdate(ctx); uerr == nil {
			_, err = runCommand(ctx, f.debsDir(), "apt-get", "download", name)
		}
	}
	if err != nil {
		return "", fmt.Errorf("kernel %s: download %s: %w", series, name, err)
	}
	deb, ok := f.cachedDeb(name)
	if !ok {
		return "", fmt.Errorf("kernel %s: apt-get download %s left no .deb in %s", series, name, f.debsDir())
	}
	return deb, nil
}

// cachedDeb returns the downloaded .deb of the package, if present.
func (f *kernelFetcher) cachedDeb(name string) (string, bool) {
	debs, _ := filepath.Glob(filepath.Join(f.debsDir(), name+"_*.deb"))
	if len(debs) == 0 {
		return "", false
	}
	sort.Strings(debs)
	return debs[len(debs)-1], true
}

// unpack extracts the boot/ directory of a kernel .deb into the cache. It
// extracts into a temporary directory first, so an interrupted unpack never
// looks complete.
func (f *kernelFetcher) unpack(ctx context.Context, deb, name string) error {
	if err := os.MkdirAll(f.kernelsDir(), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(f.kernelsDir(), "."+name+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	if err := walkDeb(ctx, deb, func(h *tar.Header, r io.Reader) error {
		return extractBoot(h, r, tmp)
	}); err != nil {
		return err
	}
	dst := filepath.Join(f.kernelsDir(), name)
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// walkDeb calls fn for every entry of the file system tree of a .deb, in
// archive order, with the entry's content; it stops at fn's first error.
func walkDeb(ctx context.Context, deb string, fn func(h *tar.Header, r io.Reader) error) error {
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dpkg-deb: %w", err)
	}
	walkErr := walkTar(pipe, fn)
	_, _ = io.Copy(io.Discard, pipe)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %s", filepath.Base(deb), err, strings.TrimSpace(stderr.String()))
	}
	return walkErr
}

// walkTar calls fn for every entry of a tar stream.
func walkTar(r io.Reader, fn func(h *tar.Header, r io.Reader) error) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(h, tr); err != nil {
			return err
		}
	}
}

// extractBoot copies a regular file under ./boot/ of a package into
// dir/boot/ and ignores every other entry.
func extractBoot(h *tar.Header, r io.Reader, dir string) error {
	name := strings.TrimPrefix(h.Name, "./")
	if h.Typeflag != tar.TypeReg || !strings.HasPrefix(name, "boot/") || strings.Contains(name, "..") {
		return nil
	}
	dst := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, cerr := io.Copy(out, r)
	if err := out.Close(); cerr == nil {
		cerr = err
	}
	return cerr
}

// runCommand runs a command and returns its standard output. On failure the
// error names the command and carries the tail of its combined output.
func runCommand(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, tail(msg, 400))
	}
	return stdout.Bytes(), nil
}

// tail returns at most the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
