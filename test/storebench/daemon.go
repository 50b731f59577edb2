package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/api"
	"github.com/ringfence/ringfence/sensor/mountinfo"
)

const genEnv = "RINGFENCE_STOREBENCH_GENERATOR"

// runGenerator opens a file for writing at RATE per second for SECONDS:
// one file event each in a watched cgroup.
func runGenerator() int {
	a := os.Args[1:]
	rate, _ := strconv.Atoi(a[1])
	secs, _ := strconv.Atoi(a[2])
	start := time.Now()
	const tick = 10 * time.Millisecond
	per := rate / int(time.Second/tick)
	for n := 0; time.Since(start) < time.Duration(secs)*time.Second; n++ {
		for i := 0; i < per; i++ {
			fd, err := unix.Open(a[0], unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			unix.Close(fd)
		}
		if d := time.Until(start.Add(time.Duration(n+1) * tick)); d > 0 {
			time.Sleep(d)
		}
	}
	return 0
}

func rssMB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// daemonMemory runs the daemon with its store, measures its RSS idle, then
// while a watched process causes 100,000 file events a second for 10 s.
func daemonMemory(cfg config) (idle, peak float64, lost uint64, err error) {
	root, err := mountinfo.Cgroup2Root()
	if err != nil {
		return 0, 0, 0, err
	}
	cg := filepath.Join(root, fmt.Sprintf("ringfence-storebench-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		return 0, 0, 0, err
	}
	defer os.Remove(cg)
	sock := filepath.Join(cfg.dir, "api.sock")
	d := exec.Command(cfg.ringfence, "run", "--watch-cgroup", cg, "--store", filepath.Join(cfg.dir, "daemon-store"),
		"--api-socket", sock, "--metrics-addr", "", "--stdout=false")
	d.Stderr = os.Stderr
	if err := d.Start(); err != nil {
		return 0, 0, 0, err
	}
	defer func() { d.Process.Signal(syscall.SIGTERM); d.Wait() }()
	client := api.NewClient(sock)
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s, err := client.Status(ctx)
		cancel()
		if err == nil && s.Ready {
			break
		}
		if i > 300 {
			return 0, 0, 0, fmt.Errorf("daemon not ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(5 * time.Second)
	if idle, err = rssMB(d.Process.Pid); err != nil {
		return 0, 0, 0, err
	}

	target := filepath.Join(cfg.dir, "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		return 0, 0, 0, err
	}
	fd, err := os.Open(cg)
	if err != nil {
		return 0, 0, 0, err
	}
	defer fd.Close()
	gen := exec.Command(os.Args[0], target, "100000", "10")
	gen.Env = append(os.Environ(), genEnv+"=1")
	gen.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fd.Fd())}
	gen.Stderr = os.Stderr
	if err := gen.Start(); err != nil {
		return 0, 0, 0, err
	}
	done := make(chan error, 1)
	go func() { done <- gen.Wait() }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				return 0, 0, 0, fmt.Errorf("generator: %w", err)
			}
			running = false
		case <-tick.C:
		}
		if r, err := rssMB(d.Process.Pid); err == nil && r > peak {
			peak = r
		}
	}
	time.Sleep(2 * time.Second) // let the pipeline drain and report
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := client.Status(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	for _, n := range s.Lost {
		lost += n
	}
	fmt.Printf("daemon: RSS idle %.1f MB, peak %.1f MB at 100,000 events/s; events %v; lost %v; stalls %v\n", idle, peak, s.Events, s.Lost, s.Stalls)
	return idle, peak, lost, nil
}
