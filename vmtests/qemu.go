package vmtests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// KernelCmdline returns the kernel command line of a VM of the series. The
// kernel's own default LSM list is kept: bpf is active by default on
// Debian's kernels.
//
// Kernels from 6.12 on boot with preempt=full (Debian's are built with
// PREEMPT_DYNAMIC and default to voluntary preemption): there, a task can
// be preempted in the middle of a BPF hook, as on kernels built to
// preempt, PREEMPT_RT ones, and those defaulting to lazy preemption (6.13
// on). The sensor's hooks must stay right in both worlds, and the two VMs
// between them test both.
func KernelCmdline(series string) string {
	line := "console=ttyS0 quiet panic=-1"
	if PreemptFull(series) {
		line += " preempt=full"
	}
	return line
}

// PreemptFull reports whether VMs of the series boot with preempt=full.
func PreemptFull(series string) bool {
	var major, minor int
	if _, err := fmt.Sscanf(series, "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 6 || major == 6 && minor >= 12
}

// powerOffGrace is how long a VM may take to power off after RINGFENCE-DONE
// before it is killed.
const powerOffGrace = 30 * time.Second

// QEMUArgs returns the qemu arguments that boot kernel with initrd under TCG
// with the serial console on standard output, no network and no reboot, so
// that a guest panic (with panic=-1) or power-off ends qemu.
//
// One vCPU: with two, attaching the sensor's programs (kernel text patched
// while the other vCPU may run it) wedged the 6.1 guest in about half of
// the full runs (both vCPUs in soft lockup) and made the 6.12 guest oops
// now and then, under emulation only: see the notes in docs/kernel.md.
func QEMUArgs(kernel, initrd, cmdline string) []string {
	return []string{
		"-accel", "tcg", "-cpu", "max", "-m", "2048", "-smp", "1",
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", kernel, "-initrd", initrd,
		"-append", cmdline,
	}
}

// bootSpec describes one VM boot.
type bootSpec struct {
	qemu        string
	kernel      string
	initrd      string
	cmdline     string
	timeout     time.Duration
	bootTimeout time.Duration
	// console receives every line qemu prints, stdout and stderr alike;
	// it may be called from two goroutines at once.
	console func(line string)
}

// bootResult is the outcome of one VM boot.
type bootResult struct {
	transcript Transcript
	end        Ending
	elapsed    time.Duration // qemu start to exit
	bootTime   time.Duration // qemu start to RINGFENCE-LSM, 0 if never
	testTime   time.Duration // RINGFENCE-LSM to RINGFENCE-DONE, 0 if never
}

// boot runs one VM to its end. It returns an error only when qemu could not
// be started or failed by itself (bad arguments, for instance); a guest
// that died or hung is reported through the result.
func boot(ctx context.Context, spec bootSpec) (bootResult, error) {
	var (
		res             bootResult
		lsmAt, doneAt   time.Time
		stderr          strings.Builder
		stderrMu        sync.Mutex
		lsmCh, doneCh   = make(chan struct{}), make(chan struct{})
		lsmSent, doneSt bool
	)
	start := time.Now()
	out := &lineWriter{emit: func(line string) {
		spec.console(line)
		switch res.transcript.Feed(line) {
		case MarkerLSM:
			if !lsmSent {
				lsmSent, lsmAt = true, time.Now()
				close(lsmCh)
			}
		case MarkerDone:
			if !doneSt {
				doneSt, doneAt = true, time.Now()
				close(doneCh)
			}
		}
	}}
	errOut := &lineWriter{emit: func(line string) {
		spec.console("qemu: " + line)
		stderrMu.Lock()
		stderr.WriteString(line + "\n")
		stderrMu.Unlock()
	}}
	cmd := exec.Command(spec.qemu, QEMUArgs(spec.kernel, spec.initrd, spec.cmdline)...)
	cmd.Stdout, cmd.Stderr = out, errOut
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("start %s: %w", spec.qemu, err)
	}
	waitCh := make(chan error, 1)
	go func() { waitCh <- cmd.Wait() }()

	total := time.NewTimer(spec.timeout)
	defer total.Stop()
	bootTimer := time.NewTimer(spec.bootTimeout)
	defer bootTimer.Stop()
	var graceC <-chan time.Time
	end, killed := EndExited, false
	kill := func(why Ending) {
		if !killed {
			killed, end = true, why
			_ = cmd.Process.Kill()
		}
	}
	var waitErr error
loop:
	for {
		select {
		case waitErr = <-waitCh:
			break loop
		case <-lsmCh:
			bootTimer.Stop()
			lsmCh = nil
		case <-doneCh:
			doneCh = nil
			grace := time.NewTimer(powerOffGrace)
			defer grace.Stop()
			graceC = grace.C
		case <-graceC:
			// The tests are over; a VM slow to power off is not a failure.
			kill(EndExited)
		case <-bootTimer.C:
			kill(EndBootTimeout)
		case <-total.C:
			kill(EndTimeout)
		case <-ctx.Done():
			kill(EndInterrupted)
		}
	}
	out.flush()
	errOut.flush()
	res.end = end
	res.elapsed = time.Since(start)
	if !lsmAt.IsZero() {
		res.bootTime = lsmAt.Sub(start)
		if !doneAt.IsZero() {
			res.testTime = doneAt.Sub(lsmAt)
		}
	}
	var exitErr *exec.ExitError
	if !killed && errors.As(waitErr, &exitErr) && !res.transcript.Done {
		return res, fmt.Errorf("%s: %v: %s", spec.qemu, waitErr, tail(strings.TrimSpace(stderr.String()), 300))
	}
	if waitErr != nil && !killed && exitErr == nil {
		return res, fmt.Errorf("%s: %w", spec.qemu, waitErr)
	}
	return res, nil
}

// lineWriter splits what is written to it into lines for emit. Overlong
// partial lines are emitted in pieces.
type lineWriter struct {
	buf  []byte
	emit func(line string)
}

// maxLine is the length at which a line without a newline is emitted.
const maxLine = 64 * 1024

// Write implements io.Writer.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) >= maxLine {
		w.flush()
	}
	if len(w.buf) == 0 {
		w.buf = nil
	}
	return len(p), nil
}

// flush emits a pending partial line.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit(strings.TrimRight(string(w.buf), "\r"))
	}
	w.buf = nil
}
