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
	"github.com/ringfence/ringfence/sensor/status"
)

const genEnv = "RINGFENCE_STOREBENCH_GENERATOR"

// generator is what one generator process does (see runGenerator).
type generator struct {
	target string // a file, opened each time, or a directory of files
	files  int    // >0: target holds f0, f1... f<files-1>, opened in turn
	rate   int    // opens a second; 0: as fast as it can
	total  int    // stop after this many opens; 0: no limit
	secs   int    // stop after this many seconds
}

func (g generator) args() []string {
	return []string{g.target, strconv.Itoa(g.files), strconv.Itoa(g.rate), strconv.Itoa(g.total), strconv.Itoa(g.secs)}
}

// runGenerator opens files for writing, one file event each in a watched
// cgroup, as its arguments (generator.args) say. Opening a directory's
// files in turn makes consecutive events distinct. It prints how many it
// opened and in how many nanoseconds, so the caller knows the rate it
// reached.
func runGenerator() int {
	a := os.Args[1:]
	g := generator{target: a[0]}
	for i, p := range []*int{&g.files, &g.rate, &g.total, &g.secs} {
		*p, _ = strconv.Atoi(a[i+1])
	}
	paths := []string{g.target}
	if g.files > 0 {
		paths = make([]string, g.files)
		for i := range paths {
			paths[i] = filepath.Join(g.target, "f"+strconv.Itoa(i))
		}
	}
	start := time.Now()
	const tick = 10 * time.Millisecond
	per := g.rate / int(time.Second/tick)
	if g.rate == 0 {
		per = 1 << 62
	}
	opened := 0
	defer func() { fmt.Printf("%d %d\n", opened, time.Since(start).Nanoseconds()) }()
	for n := 0; time.Since(start) < time.Duration(g.secs)*time.Second; n++ {
		for i := 0; i < per && (g.total == 0 || opened < g.total); i++ {
			fd, err := unix.Open(paths[opened%len(paths)], unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			unix.Close(fd)
			opened++
			if g.rate == 0 && opened%1024 == 0 && time.Since(start) >= time.Duration(g.secs)*time.Second {
				break
			}
		}
		if g.total > 0 && opened >= g.total {
			return 0
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

// daemon is a running `ringfence run` watching a cgroup of its own, with
// its store.
type daemon struct {
	cmd    *exec.Cmd
	client *api.Client
	cg     string   // the watched cgroup v2 directory
	cgFD   *os.File // open on cg, to start generators inside it
	drain  chan struct{}
}

// startDaemon runs the daemon with a store under dir and waits until it is
// ready. With stdout, its events go as JSON lines to a pipe the bench
// drains, as a log collector would; otherwise --stdout=false.
func startDaemon(cfg config, dir string, stdout bool, extra ...string) (_ *daemon, err error) {
	root, err := hostfs.Cgroup2Root()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	d := &daemon{cg: filepath.Join(root, fmt.Sprintf("ringfence-storebench-%d", os.Getpid()))}
	if err := os.Mkdir(d.cg, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.stop()
		}
	}()
	if d.cgFD, err = os.Open(d.cg); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "api.sock")
	d.cmd = exec.Command(cfg.ringfence, "run", "--watch-cgroup", d.cg, "--store", filepath.Join(dir, "store"),
		"--api-socket", sock, "--metrics-addr", "", "--stdout="+strconv.FormatBool(stdout), "--bpffs", "")
	d.cmd.Args = append(d.cmd.Args, extra...)
	d.cmd.Stderr = os.Stderr
	if stdout {
		out, err := d.cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		d.drain = make(chan struct{})
		go func() {
			// Read as a log collector does, in large reads (io.Discard's
			// own would take 8 KiB at a time).
			buf := make([]byte, 1<<20)
			for {
				if _, err := out.Read(buf); err != nil {
					break
				}
			}
			close(d.drain)
		}()
	}
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	d.client = api.NewClient(sock)
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s, err := d.client.Status(ctx)
		cancel()
		if err == nil && s.Ready {
			return d, nil
		}
		if i > 300 {
			return nil, fmt.Errorf("daemon not ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the daemon (SIGTERM) and removes its cgroup.
func (d *daemon) stop() {
	if d.cmd != nil && d.cmd.Process != nil {
		d.cmd.Process.Signal(syscall.SIGTERM)
		if d.drain != nil {
			<-d.drain
		}
		d.cmd.Wait()
	}
	if d.cgFD != nil {
		d.cgFD.Close()
	}
	os.Remove(d.cg)
}

// counts returns the daemon's lost events (every cause) and stored events so far.
func (d *daemon) counts() (lost, stored uint64, err error) {
	s, err := d.status()
	if err != nil {
		return 0, 0, err
	}
	for _, n := range s.Lost {
		lost += n
	}
	return lost, s.Store.Events, nil
}

// status returns the daemon's status, which must include its store.
func (d *daemon) status() (*status.Snapshot, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := d.client.Status(ctx)
	if err != nil {
		return nil, err
	}
	if s.Store == nil {
		return nil, fmt.Errorf("the daemon reports no store")
	}
	return s, nil
}

// generate runs n generator processes in the daemon's cgroup, each doing
// g; while they run, sample is called every 100 ms. It returns the events
// they made and their real rate together.
func (d *daemon) generate(n int, g generator, sample func()) (made uint64, realRate float64, err error) {
	type result struct {
		out string
		err error
	}
	done := make(chan result, n)
	for range n {
		gen := exec.Command(os.Args[0], g.args()...)
		gen.Env = append(os.Environ(), genEnv+"=1")
		gen.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(d.cgFD.Fd())}
		gen.Stderr = os.Stderr
		var out strings.Builder
		gen.Stdout = &out
		if err := gen.Start(); err != nil {
			return 0, 0, err
		}
		go func() {
			err := gen.Wait()
			done <- result{out.String(), err}
		}()
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var longest int64
	for left := n; left > 0; {
		select {
		case r := <-done:
			left--
			var k uint64
			var ns int64
			if r.err != nil {
				err = fmt.Errorf("generator: %w", r.err)
			} else if _, serr := fmt.Sscan(r.out, &k, &ns); serr != nil || ns <= 0 {
				err = fmt.Errorf("generator said %q: %v", r.out, serr)
			}
			made += k
			longest = max(longest, ns)
		case <-tick.C:
			if sample != nil {
				sample()
			}
		}
	}
	if err != nil {
		return 0, 0, err
	}
	return made, float64(made) / time.Duration(longest).Seconds(), nil
}

// settle waits until the store stops growing (the pipeline has drained)
// and returns the counts then.
func (d *daemon) settle() (lost, stored uint64, err error) {
	var last uint64
	for i := 0; i < 60; i++ {
		time.Sleep(500 * time.Millisecond)
		if lost, stored, err = d.counts(); err != nil || (i > 0 && stored == last) {
			return lost, stored, err
		}
		last = stored
	}
	return lost, stored, nil
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
	d, err := startDaemon(cfg, filepath.Join(cfg.dir, "daemon"), false)
	if err != nil {
		return b, err
	}
	defer d.stop()
	time.Sleep(5 * time.Second)
	pid := d.cmd.Process.Pid
	if b.idle, err = rssMB(pid); err != nil {
		return b, err
	}
	lostBefore, storedBefore, err := d.counts()
	if err != nil {
		return b, err
	}
	target := filepath.Join(cfg.dir, "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		return b, err
	}
	b.generated, b.rate, err = d.generate(1, generator{target: target, rate: 100_000, secs: 10}, func() {
		if r, err := rssMB(pid); err == nil && r > b.peak {
			b.peak = r
		}
	})
	if err != nil {
		return b, err
	}
	lostAfter, storedAfter, err := d.settle()
	if err != nil {
		return b, err
	}
	b.lost, b.stored = lostAfter-lostBefore, storedAfter-storedBefore
	fmt.Printf("daemon: RSS idle %.1f MB, peak %.1f MB; generator %d events at %.0f/s; stored %d, lost %d\n",
		b.idle, b.peak, b.generated, b.rate, b.stored, b.lost)
	return b, nil
}
