package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ringfence/ringfence/sensor/status"
)

// distinctFiles is how many files the pipeline's generators open in turn:
// consecutive events name different files, so none is a repeat of the one
// before.
const distinctFiles = 16384

// pipeRun is what the daemon did with a stream of distinct file events,
// from the kernel ring to its store.
type pipeRun struct {
	stdout    bool
	asked     int     // events/s the generators were asked for
	generated uint64  // file opens they made
	rate      float64 // their real rate, events/s
	stored    uint64  // events the store gained
	lost      uint64  // events counted lost, every cause
	lostBy    map[string]uint64
	cpu       float64 // the daemon's CPU time over the run's wall time
	// stalls are the times a stage of the daemon waited for the next, by
	// stage ("ring": the kernel ring found three quarters full).
	stalls map[string]uint64
	// stdoutDropped are the JSON lines stdout dropped (the store has
	// them), every cause.
	stdoutDropped uint64
}

// met reports whether the pipeline took every event at the rate asked.
func (p pipeRun) met() bool {
	return p.rate >= float64(p.asked)*0.98 && p.lost == 0 && p.stored >= p.generated
}

func (p pipeRun) String() string {
	s := fmt.Sprintf("%.0f/s (asked %d/s), %d stored of %d, %d lost; daemon %.2f CPUs, %.2f µs CPU per event",
		p.rate, p.asked, p.stored, p.generated, p.lost, p.cpu, p.cpu/p.rate*1e6)
	if p.lost > 0 {
		s += fmt.Sprintf(" %v", p.lostBy)
	}
	if p.stdout {
		s += fmt.Sprintf("; %d lines dropped by stdout", p.stdoutDropped)
	}
	return s
}

// stallList lists the stalls that happened, "stage n, ...".
func (p pipeRun) stallList() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(p.stalls)) {
		if p.stalls[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, p.stalls[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// pipeline runs the daemon as deployed (store, API; JSON lines on stdout
// drained by the bench when stdout) while gens generator processes in its
// watched cgroup ask rate distinct file events a second for secs seconds.
func pipeline(cfg config, stdout bool, gens, rate, secs int) (p pipeRun, err error) {
	p.stdout, p.asked = stdout, rate
	files := filepath.Join(cfg.dir, "distinct")
	if err := makeFiles(files, distinctFiles); err != nil {
		return p, err
	}
	d, err := startDaemon(cfg, filepath.Join(cfg.dir, "pipeline-"+strconv.FormatBool(stdout)), stdout, "--ring-mib", strconv.Itoa(cfg.pipeRingMiB))
	if err != nil {
		return p, err
	}
	defer d.stop()
	before, err := d.status()
	if err != nil {
		return p, err
	}
	cpuBefore, err := cpuTime(d.cmd.Process.Pid)
	if err != nil {
		return p, err
	}
	start := time.Now()
	p.generated, p.rate, err = d.generate(gens, generator{target: files, files: distinctFiles, rate: rate / gens, secs: secs}, nil)
	if err != nil {
		return p, err
	}
	if _, _, err := d.settle(); err != nil {
		return p, err
	}
	after, err := d.status()
	if err != nil {
		return p, err
	}
	cpuAfter, err := cpuTime(d.cmd.Process.Pid)
	if err != nil {
		return p, err
	}
	// The daemon's CPU over the generators' time: what it spent on the
	// events, draining included, spread over the time they came in.
	p.cpu = (cpuAfter - cpuBefore).Seconds() / time.Since(start).Seconds()
	p.lostBy = map[string]uint64{}
	for k, n := range after.Lost {
		p.lost += n - before.Lost[k]
		if n > before.Lost[k] {
			p.lostBy[k] = n - before.Lost[k]
		}
	}
	p.stored = after.Store.Events - before.Store.Events
	p.stdoutDropped = sinkDropped(before, after)
	p.stalls = map[string]uint64{}
	for k, n := range after.Stalls {
		p.stalls[k] = n - before.Stalls[k]
	}
	fmt.Printf("pipeline (stdout %v, %d generators): %s; stalls: %s\n", stdout, gens, p, p.stallList())
	return p, nil
}

// makeFiles creates n empty files f0... in dir, once.
func makeFiles(dir string, n int) error {
	if _, err := os.Stat(filepath.Join(dir, "f"+strconv.Itoa(n-1))); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, "f"+strconv.Itoa(i)), nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// cpuTime is the user and system CPU time process pid has used.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	// Clock ticks: 100 a second on Linux (USER_HZ).
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// drainRun is how fast the daemon took a ring full of distinct file events
// into its store, with the machine to itself.
type drainRun struct {
	stdout bool
	events uint64        // events written to the ring while the daemon was stopped
	stored uint64        // events the store gained
	lost   uint64        // events counted lost, every cause
	rate   float64       // events/s from 10% to 90% of them stored
	total  time.Duration // from the daemon's resumption to the last stored
	stalls map[string]uint64
	// stdoutDropped are the JSON lines stdout dropped (the store has
	// them), every cause.
	stdoutDropped uint64
}

func (r drainRun) met() bool { return r.rate >= 500_000 && r.lost == 0 && r.stored >= r.events }

func (r drainRun) String() string {
	s := fmt.Sprintf("%.0f/s; %d stored of %d in %s, %d lost", r.rate, r.stored, r.events, r.total.Round(time.Millisecond), r.lost)
	if r.stdout {
		s += fmt.Sprintf("; %d lines dropped by stdout", r.stdoutDropped)
	}
	return s
}

// sinkDropped counts the events a sink (stdout) dropped between two
// statuses, every cause.
func sinkDropped(before, after *status.Snapshot) uint64 {
	var n uint64
	for k, v := range after.SinkDropped {
		n += v - before.SinkDropped[k]
	}
	return n
}

// drainRing measures the pipeline alone, from the kernel ring to the
// store: the daemon (as deployed, with a ring of ringMiB) is stopped
// (SIGSTOP) while gens generators write n distinct file events into its
// ring as fast as they can, then resumed; the rate is the store's progress
// from 10% to 90% of them, so neither the start nor the last batch's
// sync interval counts.
func drainRing(cfg config, stdout bool, gens, n, ringMiB int) (r drainRun, err error) {
	r.stdout = stdout
	files := filepath.Join(cfg.dir, "distinct")
	if err := makeFiles(files, distinctFiles); err != nil {
		return r, err
	}
	d, err := startDaemon(cfg, filepath.Join(cfg.dir, "drain-"+strconv.FormatBool(stdout)), stdout, "--ring-mib", strconv.Itoa(ringMiB))
	if err != nil {
		return r, err
	}
	defer d.stop()
	before, err := d.status()
	if err != nil {
		return r, err
	}
	if err := d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return r, err
	}
	made, _, err := d.generate(gens, generator{target: files, files: distinctFiles, total: n / gens, secs: 120}, nil)
	if cerr := d.cmd.Process.Signal(syscall.SIGCONT); err == nil {
		err = cerr
	}
	if err != nil {
		return r, err
	}
	r.events = made
	start := time.Now()
	var at10, at90 time.Duration
	var last uint64
	for idle := time.Duration(0); idle < 5*time.Second; {
		time.Sleep(20 * time.Millisecond)
		_, stored, err := d.counts()
		if err != nil {
			return r, err
		}
		got := stored - before.Store.Events
		if got == last {
			idle += 20 * time.Millisecond
			continue
		}
		idle, last = 0, got
		now := time.Since(start)
		if at10 == 0 && got*10 >= made {
			at10 = now
		}
		if at90 == 0 && got*10 >= made*9 {
			at90 = now
		}
		if got >= made {
			r.total = now
			break
		}
	}
	after, err := d.status()
	if err != nil {
		return r, err
	}
	for k, v := range after.Lost {
		r.lost += v - before.Lost[k]
	}
	r.stored = after.Store.Events - before.Store.Events
	r.stdoutDropped = sinkDropped(before, after)
	r.stalls = map[string]uint64{}
	for k, v := range after.Stalls {
		r.stalls[k] = v - before.Stalls[k]
	}
	if at90 > at10 {
		r.rate = float64(made) * 0.8 / (at90 - at10).Seconds()
	}
	fmt.Printf("drain (stdout %v): %s; stalls %v\n", stdout, r, r.stalls)
	return r, nil
}
