// Command vmtest boots Debian kernels in qemu and runs static Go test
// binaries inside them; see package vmtests.
//
//	vmtest -kernels 6.1,6.12 -cache DIR -tests A.test,B.test [-run REGEX] [-timeout 10m]
//	       [-modules overlay,...] [-extra SRC:DST ...]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ringfence/ringfence/vmtests"
)

func main() {
	os.Exit(run())
}

// run parses the flags, runs the harness and returns the exit status:
// 0 when every kernel passed, 1 when one failed, 2 on a usage or setup error.
func run() int {
	var cfg vmtests.Config
	kernels := flag.String("kernels", "6.1,6.12", "comma-separated kernel series to boot, in order")
	tests := flag.String("tests", "", "comma-separated static test binaries (CGO_ENABLED=0 go test -c)")
	modules := flag.String("modules", "", "comma-separated kernel modules to load in the VM before the tests, from each kernel's package")
	require := flag.String("require", "", "comma-separated top-level tests that must pass on every kernel (a -run filter that misses one fails)")
	flag.StringVar(&cfg.CacheDir, "cache", vmtests.DefaultCacheDir, "directory for .deb files, kernels, initramfs images and logs")
	flag.StringVar(&cfg.Run, "run", "", "passed to every test binary as -test.run")
	flag.DurationVar(&cfg.Timeout, "timeout", vmtests.DefaultTimeout, "time limit for one boot of one kernel")
	flag.DurationVar(&cfg.BootTimeout, "boot-timeout", vmtests.DefaultBootTimeout, "time limit to reach /init's LSM report")
	flag.Func("extra", "SRC:DST host file to copy into the VM, with its shared libraries (repeatable)", func(s string) error {
		x, err := vmtests.ParseExtra(s)
		cfg.Extras = append(cfg.Extras, x)
		return err
	})
	flag.Parse()
	if flag.NArg() > 0 || *tests == "" {
		fmt.Fprintln(os.Stderr, "vmtest: -tests is required and no positional arguments are accepted")
		flag.Usage()
		return 2
	}
	cfg.Kernels = splitList(*kernels)
	cfg.Tests = splitList(*tests)
	cfg.Modules = splitList(*modules)
	cfg.Require = splitList(*require)
	cfg.Out = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	results, err := vmtests.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest:", err)
		return 2
	}
	fmt.Println()
	if err := vmtests.WriteReport(os.Stdout, results); err != nil {
		fmt.Fprintln(os.Stderr, "vmtest:", err)
		return 2
	}
	if !vmtests.AllPassed(results) {
		return 1
	}
	return 0
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
