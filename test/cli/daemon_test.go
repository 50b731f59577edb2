package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/api"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/store"
	"github.com/ringfence/ringfence/test/testenv"
)

// genEnv makes the test binary a load generator (see TestMain).
const genEnv = "RINGFENCE_CLI_GENERATOR"

func TestMain(m *testing.M) {
	if gen := os.Getenv(genEnv); gen != "" {
		if err := generate(gen, os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "generator:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// generate produces file events: "open-loop PATH N" opens PATH for writing
// N times as fast as it can; "seq-create DIR RATE" creates DIR/seq-NNNNNNNN
// files at RATE per second until killed.
func generate(gen string, a []string) error {
	switch gen {
	case "open-loop":
		n, _ := strconv.Atoi(a[1])
		for i := 0; i < n; i++ {
			fd, err := unix.Open(a[0], unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			unix.Close(fd)
		}
		return nil
	case "seq-create":
		rate, _ := strconv.Atoi(a[1])
		start := time.Now()
		for i := 0; ; i++ {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
			fd, err := unix.Open(fmt.Sprintf("%s/seq-%08d", a[0], i), unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
			if err != nil {
				return err
			}
			unix.Close(fd)
		}
	}
	return fmt.Errorf("unknown generator %q", gen)
}

func (d *daemon) status(tb testing.TB) (lost, stalls map[string]uint64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := api.NewClient(d.socket()).Status(ctx)
	if err != nil {
		tb.Fatalf("status: %v", err)
	}
	return s.Lost, s.Stalls
}

// TestLossAccounting overloads a one-MiB kernel ring: every event the
// generator caused is either in the store or counted as lost.
func TestLossAccounting(t *testing.T) {
	testenv.Privileged(t)
	bin := build(t)
	d := startDaemon(t, bin, "--ring-mib", "1")
	f := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	const generated = 200000
	gen := d.inCgroup(t, "open-loop", f, strconv.Itoa(generated))
	if err := gen.Wait(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := api.NewClient(d.socket()).Query(ctx, store.Query{Kinds: []event.Kind{event.KindFile}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var stored uint64
		for _, raw := range res.Events {
			if strings.Contains(string(raw), `"path":"`+f+`"`) && strings.Contains(string(raw), fmt.Sprintf(`"pid":%d,`, gen.Process.Pid)) {
				stored++
			}
		}
		lost, stalls := d.status(t)
		if stored+lost["ring_full_file"] == generated {
			if lost["ring_full_file"] == 0 {
				t.Fatalf("the ring never overflowed: the test did not test loss (stalls %v)", stalls)
			}
			t.Logf("generated %d = stored %d + lost %d (stalls %v)", generated, stored, lost["ring_full_file"], stalls)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("generated %d != stored %d + lost %d (lost %v)", generated, stored, lost["ring_full_file"], lost)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestKill9DuringIngest kills the daemon mid-ingest: the store must open
// cleanly afterwards, hold an unbroken run of the generator's events, and
// miss at most the last second.
func TestKill9DuringIngest(t *testing.T) {
	testenv.Privileged(t)
	bin := build(t)
	d := startDaemon(t, bin, "--stdout=false")
	dir := t.TempDir()
	gen := d.inCgroup(t, "seq-create", dir, "5000")
	defer func() { gen.Process.Kill(); gen.Wait() }()
	time.Sleep(3 * time.Second)
	killed := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.cmd.Wait()

	w, err := store.OpenWriter(d.store(), store.Options{})
	if err != nil {
		t.Fatalf("store does not open after kill -9: %v", err)
	}
	w.Close()
	r, err := store.OpenReader(d.store())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Query(store.Query{Kinds: []event.Kind{event.KindFile}})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int
	var last time.Time
	for _, m := range res.Events {
		var e event.Event
		if err := json.Unmarshal(m.JSON, &e); err != nil {
			t.Fatalf("stored record: %v", err)
		}
		name := filepath.Base(e.Path)
		if e.PID != uint32(gen.Process.Pid) || !strings.HasPrefix(name, "seq-") || e.Op != "create" {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimPrefix(name, "seq-"))
		seqs = append(seqs, n)
		if e.Time.After(last) {
			last = e.Time
		}
	}
	sort.Ints(seqs)
	if len(seqs) < 1000 {
		t.Fatalf("only %d events stored in 3 s at 5000/s", len(seqs))
	}
	for i, n := range seqs {
		if n != i {
			t.Fatalf("stored events have a hole: the %dth is seq %d", i, n)
		}
	}
	if gap := killed.Sub(last); gap > time.Second {
		t.Fatalf("the last stored event is %s older than the kill: more than one batch lost", gap)
	}
	t.Logf("%d events stored; the newest %s before kill -9", len(seqs), killed.Sub(last))
}

// TestFollow prints live events through the daemon as they happen.
func TestFollow(t *testing.T) {
	testenv.Privileged(t)
	bin := build(t)
	d := startDaemon(t, bin)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	follow := exec.CommandContext(ctx, bin, "events", "--follow", "--api-socket", d.socket(), "--store", d.store(), "--kind", "file", "-o", "json")
	out, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); follow.Wait() }()
	time.Sleep(500 * time.Millisecond) // let it subscribe
	f := filepath.Join(t.TempDir(), "followed")
	os.WriteFile(f, nil, 0o644)
	gen := d.inCgroup(t, "open-loop", f, "1")
	gen.Wait()
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), f) {
				got <- sc.Text()
				return
			}
		}
	}()
	select {
	case line := <-got:
		if !strings.Contains(line, `"kind":"file"`) {
			t.Fatalf("followed line: %s", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no live event within 10 s")
	}
}
