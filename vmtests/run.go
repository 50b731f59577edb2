package vmtests

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// KernelResult is the outcome of testing one kernel series.
type KernelResult struct {
	// Series is the kernel series, such as "6.1".
	Series string
	// Package is the Debian package booted; empty if none was found.
	Package string
	// Pass is true when the kernel passed.
	Pass bool
	// Reason explains the result.
	Reason string
	// Retried is true when a first boot died before reporting and the VM
	// was booted a second time.
	Retried bool
	// BootTime is the time from starting qemu to the RINGFENCE-LSM line in
	// the last boot; zero if it never came.
	BootTime time.Duration
	// TestTime is the time from RINGFENCE-LSM to RINGFENCE-DONE in the last
	// boot; zero if it never came.
	TestTime time.Duration
	// Duration is the wall time of all boots of this kernel, without the
	// kernel download.
	Duration time.Duration
	// Log is the console log file.
	Log string
	// Failures are the failed tests of the last boot, with their last lines.
	Failures []Failure
}

// AllPassed reports whether every kernel passed; it is false for none.
func AllPassed(results []KernelResult) bool {
	for _, r := range results {
		if !r.Pass {
			return false
		}
	}
	return len(results) > 0
}

// Run fetches every kernel (with the modules the tests need), builds one
// initramfs for all of them and then, for each kernel series in turn, boots
// it and judges the result. The error is non-nil only when nothing could be
// tested (bad configuration, qemu or busybox missing, initramfs build
// failure); per-kernel failures are in the results.
func Run(ctx context.Context, cfg Config) ([]KernelResult, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Kernels) == 0 {
		return nil, errors.New("no kernels given")
	}
	if len(cfg.Tests) == 0 {
		return nil, errors.New("no test binaries given")
	}
	for _, s := range cfg.Kernels {
		if err := checkSeries(s); err != nil {
			return nil, err
		}
	}
	qemu, err := exec.LookPath(cfg.QEMU)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w (install the qemu-system-x86 package)", err)
	}
	cfg.QEMU = qemu
	// The image is checked before any download, so that a setup error
	// shows at once; it is written once the modules are known.
	im, tests, err := baseImage(ctx, cfg)
	if err != nil {
		return nil, err
	}

	fetcher := &kernelFetcher{
		cacheDir: cfg.CacheDir,
		logf:     func(f string, a ...any) { fmt.Fprintf(cfg.Out, "vmtest: "+f+"\n", a...) },
	}
	prepared := make([]preparedKernel, len(cfg.Kernels))
	var mods []KernelModules
	for i, series := range cfg.Kernels {
		prepared[i] = prepareKernel(ctx, cfg, fetcher, series)
		if prepared[i].err == nil {
			mods = append(mods, prepared[i].modules)
		}
	}

	start := time.Now()
	if err := im.addModules(mods); err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	path, err := writeImage(im, filepath.Join(cfg.CacheDir, "initramfs"))
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	initrd := Initramfs{Path: path, Tests: tests}
	fmt.Fprintf(cfg.Out, "vmtest: initramfs %s (%d test binaries) ready in %.1fs\n",
		initrd.Path, len(initrd.Tests), time.Since(start).Seconds())

	var results []KernelResult
	for _, p := range prepared {
		switch {
		case ctx.Err() != nil:
			results = append(results, KernelResult{Series: p.kernel.Series, Reason: "not run: interrupted"})
		case p.err != nil:
			results = append(results, KernelResult{Series: p.kernel.Series, Package: p.kernel.Package, Reason: p.err.Error()})
		default:
			results = append(results, runKernel(ctx, cfg, p.kernel, initrd))
		}
	}
	return results, nil
}

// preparedKernel is a fetched kernel with its modules, or why it could not
// be fetched.
type preparedKernel struct {
	kernel  Kernel
	modules KernelModules
	err     error
}

// prepareKernel fetches the kernel of series and the modules cfg names.
func prepareKernel(ctx context.Context, cfg Config, fetcher *kernelFetcher, series string) preparedKernel {
	prefix := "[" + series + "] "
	start := time.Now()
	p := preparedKernel{kernel: Kernel{Series: series}}
	if ctx.Err() != nil {
		p.err = ctx.Err()
		return p
	}
	k, err := fetcher.fetch(ctx, series)
	if err == nil {
		p.kernel = k
		p.modules, err = fetcher.modules(ctx, k, cfg.Modules)
	}
	if err != nil {
		p.err = err
		fmt.Fprintf(cfg.Out, "%svmtest: %v\n", prefix, err)
		return p
	}
	fmt.Fprintf(cfg.Out, "%svmtest: kernel %s (%s)%s, ready in %.1fs\n",
		prefix, k.Package, k.Image, describeModules(p.modules), time.Since(start).Seconds())
	return p
}

// describeModules names the modules a VM loads, for the progress output.
func describeModules(km KernelModules) string {
	if len(km.Files) == 0 {
		return ""
	}
	names := make([]string, len(km.Files))
	for i, f := range km.Files {
		names[i] = ModuleName(f)
	}
	return " with modules " + strings.Join(names, ",")
}

// runKernel boots one fetched kernel, booting it a second time if the first
// VM died before reporting any result.
func runKernel(ctx context.Context, cfg Config, k Kernel, initrd Initramfs) KernelResult {
	series := k.Series
	res := KernelResult{Series: series, Package: k.Package}
	prefix := "[" + series + "] "

	logDir := filepath.Join(cfg.CacheDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		res.Reason = fmt.Sprintf("kernel %s: console log: %v", series, err)
		return res
	}
	res.Log = filepath.Join(logDir, series+".log")
	logFile, err := os.Create(res.Log)
	if err != nil {
		res.Reason = fmt.Sprintf("kernel %s: console log: %v", series, err)
		return res
	}
	defer logFile.Close()
	con := &console{log: logFile, out: cfg.Out, prefix: prefix}

	spec := bootSpec{
		qemu: cfg.QEMU, kernel: k.Image, initrd: initrd.Path,
		cmdline: KernelCmdline(k.Series),
		timeout: cfg.Timeout, bootTimeout: cfg.BootTimeout,
		console: con.line,
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		con.note(fmt.Sprintf("vmtest: boot %d of %s with %s: %s", attempt, k.Package, filepath.Base(initrd.Path), spec.cmdline))
		b, err := boot(ctx, spec)
		res.Duration = time.Since(start)
		res.BootTime, res.TestTime = b.bootTime, b.testTime
		if err != nil {
			res.Reason = fmt.Sprintf("kernel %s: %v", series, err)
			con.note("vmtest: " + res.Reason)
			return res
		}
		v := Judge(b.transcript, initrd.Tests, cfg.Require, b.end)
		res.Pass, res.Reason = v.Pass, v.Reason
		res.Failures = b.transcript.Failures
		con.note(fmt.Sprintf("vmtest: boot %d ended (%s) after %.1fs: %s", attempt, b.end, b.elapsed.Seconds(), v.Reason))
		if v.Retry() && attempt == 1 && ctx.Err() == nil {
			res.Retried = true
			con.note("vmtest: VM died (" + v.Reason + "); retrying this boot once")
			continue
		}
		return res
	}
}

// console writes VM console lines to the log file verbatim and to the
// run's output with the kernel's prefix.
type console struct {
	mu     sync.Mutex
	log    io.Writer
	out    io.Writer
	prefix string
}

// line records one console line.
func (c *console) line(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintln(c.log, s)
	fmt.Fprintln(c.out, c.prefix+cleanLine(s))
}

// note records a harness message.
func (c *console) note(s string) { c.line(s) }
