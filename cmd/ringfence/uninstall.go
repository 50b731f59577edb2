package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/hostfs"
	"github.com/ringfence/ringfence/sensor/kernel"
)

// uninstallCmd detaches and removes what the daemon pinned, and lets go
// every process the kernel held. It refuses while a daemon runs.
func uninstallCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("uninstall", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("bpffs", kernel.DefaultPinDir, "the bpffs `DIR` the daemon pinned its state in")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ringfence uninstall: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := kernel.EnsureMounts(); err != nil {
		fmt.Fprintf(stderr, "ringfence uninstall: %v\n", err)
		return 1
	}
	removed, pending, err := kernel.Uninstall(*dir)
	for _, r := range removed {
		fmt.Fprintf(stdout, "removed %s\n", r)
	}
	let, lerr := letGo(pending)
	for _, pid := range let {
		fmt.Fprintf(stdout, "let go held process %d\n", pid)
	}
	if err := errors.Join(err, lerr); err != nil {
		fmt.Fprintf(stderr, "ringfence uninstall: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "nothing of ringfence is left in %s: %d pins removed, %d held processes let go\n", *dir, len(removed), len(let))
	return 0
}

// letGo continues the stopped processes of the cgroups the kernel held.
func letGo(cgroups []uint64) ([]uint32, error) {
	if len(cgroups) == 0 {
		return nil, nil
	}
	root, err := hostfs.Cgroup2Root()
	if err != nil {
		return nil, err
	}
	var out []uint32
	var errs []error
	for _, id := range cgroups {
		rel, err := hostfs.FindCgroup(root, id)
		if err != nil {
			continue // gone with its container
		}
		pids, _ := hostfs.CgroupProcs(root, rel)
		for _, pid := range pids {
			if hostfs.Stopped("/proc", pid) {
				if err := unix.Kill(int(pid), unix.SIGCONT); err != nil {
					errs = append(errs, fmt.Errorf("let go process %d: %w", pid, err))
					continue
				}
				out = append(out, pid)
			}
		}
	}
	return out, errors.Join(errs...)
}
