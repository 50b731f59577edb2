package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sensorProc is one running `ringfence run`.
type sensorProc struct {
	cmd     *exec.Cmd
	out     *os.File // its stdout: events as JSON lines
	stderr  *tailBuffer
	exited  chan struct{}
	waitErr error
}

// startSensor runs the sensor watching watchDir, with its events going to
// outPath, and returns once its programs are attached.
//
// Readiness comes from the "sensor started" log line on stderr, written once
// New has attached every program and filled the watch set: the first stdout
// line says the same, but stdout goes to a file the bench reads afterwards.
func startSensor(ctx context.Context, bin, watchDir, runBase, outPath string) (*sensorProc, error) {
	out, err := os.Create(outPath)
	if err != nil {
		return nil, err
	}
	// A file, not a pipe: the bench reads it after the run, so it does no
	// work while the child is measured, and the sensor never blocks on it.
	// The daemon as it runs in production: store and API socket included,
	// both private to this run; no metrics listener to collide on.
	cmd := exec.CommandContext(ctx, bin, "run", "--watch-cgroup", watchDir, "--stdout=true",
		"--store", runBase+".store", "--api-socket", runBase+".sock", "--metrics-addr", "", "--bpffs", "") // nothing pinned: each run its own
	cmd.Stdout = out
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	rd, wr, err := os.Pipe()
	if err != nil {
		out.Close()
		return nil, err
	}
	cmd.Stderr = wr
	if err := cmd.Start(); err != nil {
		out.Close()
		rd.Close()
		wr.Close()
		return nil, fmt.Errorf("start sensor: %w", err)
	}
	wr.Close()
	s := &sensorProc{cmd: cmd, out: out, stderr: &tailBuffer{max: 8192}, exited: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(rd)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			s.stderr.writeLine(line)
			if !signalled && strings.Contains(line, `msg="sensor started"`) {
				signalled = true
				close(ready)
			}
		}
		io.Copy(io.Discard, rd)
		rd.Close()
	}()
	go func() {
		s.waitErr = cmd.Wait()
		out.Close()
		close(s.exited)
	}()
	select {
	case <-ready:
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("sensor exited before it started (%v):\n%s", s.waitErr, s.stderr)
	case <-time.After(60 * time.Second):
		s.stop()
		return nil, fmt.Errorf("sensor did not start within 60s:\n%s", s.stderr)
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
}

// stop sends SIGTERM and waits for the sensor to exit, so that every program
// is detached and every buffered event is written when it returns.
func (s *sensorProc) stop() error {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Signal(syscall.SIGTERM)
		<-s.exited
	}
	if s.waitErr != nil {
		return fmt.Errorf("sensor: %v:\n%s", s.waitErr, s.stderr)
	}
	return nil
}

// tailBuffer keeps the last max bytes of the lines written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) writeLine(l string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, l...)
	t.b = append(t.b, '\n')
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// eventCounts summarises a sensor's stdout.
type eventCounts struct {
	first    string         // message of the first line: "started: tier ..."
	byCgroup map[uint64]int // events by cgroup_id
	files    map[uint64]int // "file" events by cgroup_id
	lost     uint64         // sum of the "events lost" reports
}

type eventLine struct {
	Kind     string            `json:"kind"`
	CgroupID uint64            `json:"cgroup_id"`
	Message  string            `json:"message"`
	Counts   map[string]uint64 `json:"counts"`
}

// countEvents reads JSON lines from r.
func countEvents(r io.Reader) (eventCounts, error) {
	c := eventCounts{byCgroup: map[uint64]int{}, files: map[uint64]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for n := 0; sc.Scan(); n++ {
		var e eventLine
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return c, fmt.Errorf("sensor output line %d: %w", n+1, err)
		}
		if n == 0 {
			c.first = e.Message
		}
		if e.CgroupID != 0 {
			c.byCgroup[e.CgroupID]++
			if e.Kind == "file" {
				c.files[e.CgroupID]++
			}
		}
		if e.Kind == "sensor" && e.Message == "events lost" {
			for _, v := range e.Counts {
				c.lost += v
			}
		}
	}
	return c, sc.Err()
}
