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
	"github.com/ringfence/ringfence/sensor/hostfs"
)

const genEnv = "RINGFENCE_STOREBENCH_GENERATOR"

// runGenerator opens a file for writing at RATE per second for SECONDS:
// one file event each in a watched cgroup. It prints how many it opened
// and in how many nanoseconds, so the caller knows the rate it reached.
func runGenerator() int {
	a := os.Args[1:]
	rate, _ := strconv.Atoi(a[1])
	secs, _ := strconv.Atoi(a[2])
	start := time.Now()
	const tick = 10 * time.Millisecond
	per := rate / int(time.Second/tick)
	opened := 0
	defer func() { fmt.Printf("%d %d\n", opened, time.Since(start).Nanoseconds()) }()
	for n := 0; time.Since(start) < time.Duration(secs)*time.Second; n++ {
		for i := 0; i < per; i++ {
			fd, err := unix.Open(a[0], unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			unix.Close(fd)
			opened++
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

// busyRun is what the daemon did while the generator ran.
type busyRun struct {
	idle, peak float64 // RSS, MB
	generated  uint64  // file opens the generator made
	rate       float64 // the generator's real rate, events/s
	stored     uint64  // events the store gained meanwhile
	lost       uint64  // events counted lost meanwhile, every cause
}

// met reports whether the run reached its target rate without loss within the memory budget.
func (b busyRun) met() bool {
	return b.peak <= 150 && b.rate >= 95_000 && b.lost == 0 && b.stored >= b.generated
}

// daemonMemory runs the daemon with its store, measures its RSS idle, then
// while a watched process causes 100,000 file events a second for 10 s.
func daemonMemory(cfg config) (b busyRun, err error) {
	root, err := hostfs.Cgroup2Root()
	if err != nil {
		return b, err
	}
	cg := filepath.Join(root, fmt.Sprintf("ringfence-storebench-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		return b, err
	}
	defer os.Remove(cg)
	sock := filepath.Join(cfg.dir, "api.sock")
	d := exec.Command(cfg.ringfence, "run", "--watch-cgroup", cg, "--store", filepath.Join(cfg.dir, "daemon-store"),
		"--api-socket", sock, "--metrics-addr", "", "--stdout=false", "--bpffs", "")
	d.Stderr = os.Stderr
	if err := d.Start(); err != nil {
		return b, err
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
			return b, fmt.Errorf("daemon not ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(5 * time.Second)
	if b.idle, err = rssMB(d.Process.Pid); err != nil {
		return b, err
	}
	lostBefore, storedBefore, err := counts(client)
	if err != nil {
		return b, err
	}

	target := filepath.Join(cfg.dir, "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		return b, err
	}
	fd, err := os.Open(cg)
	if err != nil {
		return b, err
	}
	defer fd.Close()
	gen := exec.Command(os.Args[0], target, "100000", "10")
	gen.Env = append(os.Environ(), genEnv+"=1")
	gen.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fd.Fd())}
	gen.Stderr = os.Stderr
	var genOut strings.Builder
	gen.Stdout = &genOut
	if err := gen.Start(); err != nil {
		return b, err
	}
	done := make(chan error, 1)
	go func() { done <- gen.Wait() }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				return b, fmt.Errorf("generator: %w", err)
			}
			running = false
		case <-tick.C:
		}
		if r, err := rssMB(d.Process.Pid); err == nil && r > b.peak {
			b.peak = r
		}
	}
	var ns int64
	if _, err := fmt.Sscan(genOut.String(), &b.generated, &ns); err != nil || ns <= 0 {
		return b, fmt.Errorf("generator said %q: %v", genOut.String(), err)
	}
	b.rate = float64(b.generated) / time.Duration(ns).Seconds()
	time.Sleep(2 * time.Second) // let the pipeline drain and report
	lostAfter, storedAfter, err := counts(client)
	if err != nil {
		return b, err
	}
	b.lost, b.stored = lostAfter-lostBefore, storedAfter-storedBefore
	fmt.Printf("daemon: RSS idle %.1f MB, peak %.1f MB; generator %d events at %.0f/s; stored %d, lost %d\n",
		b.idle, b.peak, b.generated, b.rate, b.stored, b.lost)
	return b, nil
}

// counts returns the daemon's lost events (every cause) and stored events so far.
func counts(client *api.Client) (lost, stored uint64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := client.Status(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, n := range s.Lost {
		lost += n
	}
	if s.Store == nil {
		return 0, 0, fmt.Errorf("the daemon reports no store")
	}
	return lost, s.Store.Events, nil
}
