package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Environment of a re-executed child: which workload, how many iterations,
// and its argument (a file path or a program).
const (
	envWorkload = "RINGFENCE_BENCH_WORKLOAD"
	envIters    = "RINGFENCE_BENCH_ITERS"
	envArg      = "RINGFENCE_BENCH_ARG"
	envExit     = "RINGFENCE_BENCH_EXIT"
)

// workload is one measured loop; it runs n iterations and fails on the first error.
type workload struct {
	name string
	loop func(n int, arg string) error
}

var workloads = []workload{
	{"open+close", openLoop(unix.O_RDONLY)},
	// The sensor reports writes only, so this is the case that yields an
	// event per iteration when watched.
	{"open-write+close", openLoop(unix.O_WRONLY)},
	{"bind", bindLoop},
	{"fork+exec", forkExecLoop},
}

// workloadNames lists the workloads' names, comma-separated.
func workloadNames() string {
	names := make([]string, len(workloads))
	for i, w := range workloads {
		names[i] = w.name
	}
	return strings.Join(names, ",")
}

func findWorkload(name string) (workload, bool) {
	for _, w := range workloads {
		if w.name == name {
			return w, true
		}
	}
	return workload{}, false
}

func openLoop(mode int) func(int, string) error {
	return func(n int, path string) error {
		for range n {
			fd, err := unix.Open(path, mode|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open %s: %w", path, err)
			}
			if err := unix.Close(fd); err != nil {
				return fmt.Errorf("close: %w", err)
			}
		}
		return nil
	}
}

func bindLoop(n int, _ string) error {
	sa := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	for range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		if err := unix.Bind(fd, sa); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind 127.0.0.1:0: %w", err)
		}
		if err := unix.Close(fd); err != nil {
			return fmt.Errorf("close: %w", err)
		}
	}
	return nil
}

func forkExecLoop(n int, prog string) error {
	// Set in every case: it makes the bench binary itself exit at once when
	// it is the target, and /bin/true ignores it.
	attr := &syscall.ProcAttr{Env: []string{envExit + "=1"}}
	argv := []string{prog}
	for range n {
		// syscall.ForkExec (vfork-style clone) rather than os/exec, which adds pipes
		// and goroutines that would dwarf the cost being measured.
		pid, err := syscall.ForkExec(prog, argv, attr)
		if err != nil {
			return fmt.Errorf("fork+exec %s: %w", prog, err)
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			return fmt.Errorf("wait %s: %w", prog, err)
		}
		if !ws.Exited() || ws.ExitStatus() != 0 {
			return fmt.Errorf("%s: wait status %#x", prog, uint32(ws))
		}
	}
	return nil
}

// childMain runs in the re-executed child: it times its own loop so that
// process start-up and the parent stay out of the measurement.
func childMain(name string) int {
	w, ok := findWorkload(name)
	if !ok {
		fmt.Fprintf(os.Stderr, "bench child: unknown workload %q\n", name)
		return 2
	}
	n, err := strconv.Atoi(os.Getenv(envIters))
	if err != nil || n <= 0 {
		fmt.Fprintf(os.Stderr, "bench child: bad %s=%q\n", envIters, os.Getenv(envIters))
		return 2
	}
	arg := os.Getenv(envArg)
	// A short untimed warm-up faults in code and kernel caches on both sides.
	if err := w.loop(max(n/20, 1), arg); err != nil {
		fmt.Fprintf(os.Stderr, "bench child %s: %v\n", name, err)
		return 1
	}
	start := time.Now()
	err = w.loop(n, arg)
	elapsed := time.Since(start)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench child %s: %v\n", name, err)
		return 1
	}
	fmt.Printf("ns/op %.3f\n", float64(elapsed.Nanoseconds())/float64(n))
	return 0
}
