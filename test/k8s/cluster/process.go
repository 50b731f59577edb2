package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// proc is one component of the cluster, running in the background with its
// output in LOGDIR/NAME.log.
type proc struct {
	name string
	log  string // its output
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// start runs bin with args, logging to dir/name.log.
func start(dir, name, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so that a signal to the test does not reach it
	// before Down has put things in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM, then SIGKILL after grace, and waits for the end.
func (p *proc) stop(grace time.Duration) {
	if ok, _ := p.exited(); ok {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the last lines of the file at path.
func tail(path string, lines int) string {
	data, _ := os.ReadFile(path)
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// waitFor polls check until it succeeds, the process dies or ctx ends.
func waitFor(ctx context.Context, p *proc, what string, check func() error) error {
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		if ok, err := p.exited(); ok {
			// The log goes with the cluster's directory: its end is
			// all that tells why.
			return fmt.Errorf("%s exited (%v) before %s; the end of %s:\n%s", p.name, err, what, p.log, tail(p.log, 30))
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("%s: %s: %w", p.name, what, ctx.Err()), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
