package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

type config struct {
	ringfence string
	rounds    int
	openIters int
	bindIters int
	execIters int
	execBin   string
	only      []string // workloads to measure; nil: all
}

// placement is where a child runs: in the cgroup the sensor watches, or in
// one it does not.
type placement struct {
	name string
	cg   *cgroup
}

func parentMain(args []string) int {
	var cfg config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&cfg.ringfence, "ringfence", "", "path of the ringfence binary (required)")
	fs.IntVar(&cfg.rounds, "rounds", 5, "rounds; each measures every workload without and with the sensor")
	fs.IntVar(&cfg.openIters, "open-iters", 200_000, "iterations of the open+close workloads")
	fs.IntVar(&cfg.bindIters, "bind-iters", 50_000, "iterations of the bind workload")
	fs.IntVar(&cfg.execIters, "exec-iters", 2_000, "iterations of the fork+exec workload")
	fs.StringVar(&cfg.execBin, "exec-bin", "/bin/true", `program the fork+exec workload runs; "self" for this binary, which exits at once`)
	only := fs.String("workloads", "", "comma-separated workloads to measure (default all): "+workloadNames())
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *only != "" {
		for _, name := range strings.Split(*only, ",") {
			name = strings.TrimSpace(name)
			if slices.Contains(cfg.only, name) {
				continue
			}
			if _, ok := findWorkload(name); !ok {
				fmt.Fprintf(os.Stderr, "bench: -workloads: no workload %q (have %s)\n", name, workloadNames())
				return 2
			}
			cfg.only = append(cfg.only, name)
		}
	}
	if cfg.ringfence == "" || fs.NArg() > 0 || cfg.rounds < 1 || cfg.openIters < 1 || cfg.bindIters < 1 || cfg.execIters < 1 {
		fmt.Fprintln(os.Stderr, "usage: bench -ringfence PATH [-rounds N] [-workloads A,B] [-open-iters N] [-bind-iters N] [-exec-iters N] [-exec-bin PATH|self]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	err := run(ctx, cfg, os.Stdout, os.Stderr)
	fmt.Fprintf(os.Stderr, "bench: wall time %s\n", time.Since(start).Round(100*time.Millisecond))
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

func run(ctx context.Context, cfg config, stdout, progress io.Writer) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (loads the sensor, creates cgroups)")
	}
	if _, err := os.Stat(cfg.ringfence); err != nil {
		return fmt.Errorf("-ringfence: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if cfg.execBin == "self" {
		cfg.execBin = self
	}
	tmp, err := os.MkdirTemp("", "ringfence-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	target := filepath.Join(tmp, "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		return err
	}

	root, err := cgroup2Root()
	if err != nil {
		return err
	}
	var cgs []*cgroup
	defer func() {
		// Runs after every child and sensor has been waited for, so the
		// cgroups are empty.
		for _, c := range cgs {
			err = errors.Join(err, c.remove())
		}
	}()
	mk := func(suffix string) (*cgroup, error) {
		c, err := createCgroup(root, fmt.Sprintf("ringfence-bench-%d-%s", os.Getpid(), suffix))
		if err == nil {
			cgs = append(cgs, c)
		}
		return c, err
	}
	out, err := mk("out")
	if err != nil {
		return err
	}
	in, err := mk("in")
	if err != nil {
		return err
	}
	placements := []placement{{"outside", out}, {"inside", in}}

	iters := func(w workload) (int, string) {
		switch w.name {
		case "bind":
			return cfg.bindIters, ""
		case "fork+exec":
			return cfg.execIters, cfg.execBin
		}
		return cfg.openIters, target
	}

	var results []*result
	for _, w := range workloads {
		if cfg.only != nil && !slices.Contains(cfg.only, w.name) {
			continue
		}
		for _, p := range placements {
			results = append(results, &result{workload: w.name, placement: p.name})
		}
	}
	var tierLine string
	var failures []string
	// Measurements that began while a sensor this bench did not start was
	// running, and so are not a clean comparison.
	contaminated := 0
	patience := 30 * time.Second
	guard := func() {
		if others := waitNoOtherSensor(ctx, patience); len(others) > 0 {
			contaminated++
			// A sensor that outlived the wait once is long-lived: stop waiting.
			patience = 0
			fmt.Fprintf(progress, "warning: another ringfence is running (pids %v)\n", others)
		}
	}
	for round := range cfg.rounds {
		for i, r := range results {
			w, _ := findWorkload(r.workload)
			p := placements[i%len(placements)]
			n, arg := iters(w)
			// Rotate which run goes first so slow drift of the machine
			// hits every side equally. Outside, the open loops also run
			// with only a no-op program on sys_enter: what any program
			// there costs a process it does not watch.
			modes := []string{"without", "with"}
			if p.name == "outside" && strings.HasPrefix(w.name, "open") {
				modes = append(modes, "no-op")
			}
			k := (round + i) % len(modes)
			modes = append(modes[k:], modes[:k]...)
			for _, mode := range modes {
				if mode != "with" {
					guard()
					var floor io.Closer
					if mode == "no-op" {
						if floor, err = attachFloor(); err != nil {
							return err
						}
					}
					ns, err := measure(ctx, self, w, n, arg, p.cg)
					if floor != nil {
						floor.Close()
					}
					if err != nil {
						return err
					}
					if mode == "no-op" {
						r.floor = append(r.floor, ns)
					} else {
						r.without = append(r.without, ns)
					}
					fmt.Fprintf(progress, "round %d/%d  %-16s %-7s %-8s %10.1f ns/op\n", round+1, cfg.rounds, w.name, p.name, mode, ns)
					continue
				}
				guard()
				ns, ev, err := measureWithSensor(ctx, cfg.ringfence, self, tmp, in, w, n, arg, p.cg)
				if err != nil {
					return err
				}
				if tierLine == "" {
					tierLine = ev.first
				}
				r.with = append(r.with, ns)
				r.events = append(r.events, ev.byCgroup[p.cg.id])
				r.lost = append(r.lost, ev.lost)
				fmt.Fprintf(progress, "round %d/%d  %-16s %-7s with     %10.1f ns/op  %d events\n", round+1, cfg.rounds, w.name, p.name, ns, ev.byCgroup[p.cg.id])
				// The checks that tell whether the sensor really ran.
				if p.cg == in && w.name == "open-write+close" && ev.files[in.id] == 0 {
					failures = append(failures, fmt.Sprintf("round %d: no file events for %s inside: the sensor did not see the child", round+1, w.name))
				}
				if p.cg == out && ev.byCgroup[out.id] != 0 {
					failures = append(failures, fmt.Sprintf("round %d: %d events from the unwatched cgroup for %s outside", round+1, ev.byCgroup[out.id], w.name))
				}
			}
		}
	}

	guard()
	progTable, err := measurePrograms(ctx, cfg, self, tmp, target, in, placements)
	if err != nil {
		return fmt.Errorf("per-program cost: %w", err)
	}

	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Fprintf(stdout, "kernel: %s\n", unix.ByteSliceToString(uts.Release[:]))
	fmt.Fprintf(stdout, "sensor: %s\n", tierLine)
	fmt.Fprintf(stdout, "rounds: %d  iterations: open %d, bind %d, fork+exec %d (%s)\n\n", cfg.rounds, cfg.openIters, cfg.bindIters, cfg.execIters, cfg.execBin)
	rows := make([][]string, len(results))
	for i, r := range results {
		rows[i] = r.cells()
	}
	fmt.Fprint(stdout, formatTable(tableHeader, rows))
	fmt.Fprintln(stdout, "\nratio = median with / median without; spread = min–max of the per-round ratios;")
	fmt.Fprintln(stdout, "no-op only = median with only a no-op program on sys_enter (no sensor) / median without;")
	fmt.Fprintln(stdout, "events = median per with-run of events carrying the child's cgroup_id; lost = median events the sensor reported lost")
	fmt.Fprintf(stdout, "\n%s", progTable)
	if contaminated > 0 {
		fmt.Fprintf(stdout, "warning: %d measurements began while another ringfence process was running\n", contaminated)
	}
	if len(failures) > 0 {
		return fmt.Errorf("sanity check failed:\n  %s", strings.Join(failures, "\n  "))
	}
	if !strings.HasPrefix(tierLine, "started: tier ") {
		return fmt.Errorf("sensor's first line is %q, not its start message", tierLine)
	}
	return nil
}

// measure runs workload w in a fresh child inside cg and returns the ns/op
// the child timed.
func measure(ctx context.Context, self string, w workload, n int, arg string, cg *cgroup) (float64, error) {
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), envWorkload+"="+w.name, envIters+"="+strconv.Itoa(n), envArg+"="+arg)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg.fd}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("child %s in %s: %v: %s", w.name, cg.path, err, strings.TrimSpace(stderr.String()))
	}
	return parseNsOp(out)
}

// parseNsOp reads the child's "ns/op VALUE" line.
func parseNsOp(out []byte) (float64, error) {
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] != "ns/op" {
		return 0, fmt.Errorf("child printed %q, want \"ns/op VALUE\"", out)
	}
	v, err := strconv.ParseFloat(f[1], 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("child printed %q, want a positive ns/op", out)
	}
	return v, nil
}

// measureWithSensor starts a sensor watching watched, measures w in cg, stops
// the sensor and counts what it reported. A sensor per run keeps the counts
// attributable and guarantees none is loaded during the runs without it.
func measureWithSensor(ctx context.Context, bin, self, tmp string, watched *cgroup, w workload, n int, arg string, cg *cgroup) (float64, eventCounts, error) {
	outPath := filepath.Join(tmp, "events.jsonl")
	defer os.Remove(outPath)
	s, err := startSensor(ctx, bin, watched.path, filepath.Join(tmp, "daemon"), outPath)
	if err != nil {
		return 0, eventCounts{}, err
	}
	ns, err := measure(ctx, self, w, n, arg, cg)
	if stopErr := s.stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return 0, eventCounts{}, err
	}
	f, err := os.Open(outPath)
	if err != nil {
		return 0, eventCounts{}, err
	}
	defer f.Close()
	ev, err := countEvents(f)
	return ns, ev, err
}
