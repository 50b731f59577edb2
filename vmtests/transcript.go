package vmtests

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Marker lines printed by /init inside the VM. Each starts a console line
// and is unlike anything the kernel prints.
const (
	// MarkerKernel precedes the output of uname -r.
	MarkerKernel = "RINGFENCE-KERNEL"
	// MarkerLSM precedes the contents of /sys/kernel/security/lsm.
	MarkerLSM = "RINGFENCE-LSM"
	// MarkerResult precedes a test binary's basename and exit code.
	MarkerResult = "RINGFENCE-RESULT"
	// MarkerDone follows the last test binary.
	MarkerDone = "RINGFENCE-DONE"
)

// Result is the exit code a test binary reported inside the VM.
type Result struct {
	// Test is the basename of the test binary.
	Test string
	// ExitCode is its exit status; 0 means all its tests passed.
	ExitCode int
}

// Transcript is what a VM reported on its serial console.
type Transcript struct {
	// Release is the kernel release from RINGFENCE-KERNEL.
	Release string
	// LSMSeen records that a RINGFENCE-LSM line was printed.
	LSMSeen bool
	// LSM is the active LSM list, in order.
	LSM []string
	// Results are the RINGFENCE-RESULT lines in the order printed.
	Results []Result
	// Done records that RINGFENCE-DONE was printed.
	Done bool
	// Ran counts the tests that started ("=== RUN" lines, subtests
	// included): a run whose filter matched nothing passes no test.
	Ran int
	// Passed are the top-level tests that printed "--- PASS".
	Passed map[string]bool
	// Panic is the first console line reporting a kernel panic, if any.
	Panic string
	// Lockup is the first console line reporting a soft lockup or an RCU
	// stall: a guest whose vCPUs stopped making progress.
	Lockup string
	// LastLine is the last non-empty console line.
	LastLine string
	// Failures are the tests that printed "--- FAIL", panicked, hung until
	// go test's timeout, or a binary that exited non-zero without either,
	// each with its last lines, so that a report's tail says what failed
	// and why.
	Failures []Failure

	tests testLog // go test -v's output, followed test by test
}

// Failure is one failed test and the last lines it printed.
type Failure struct {
	// Test is the test's name, such as "TestX/sub", or a test binary's
	// name with what ended it.
	Test string
	// Lines are up to failureLines of its last output lines, and then the
	// panic's line and its first frame in a _test.go file, if any.
	Lines []string
}

// failureLines bounds the lines kept for each running test; maxFailures
// bounds the failures kept for a boot.
const (
	failureLines = 8
	maxFailures  = 10
)

// testLog follows the output of the test binaries one after the other.
type testLog struct {
	current  string              // the test whose output the console shows
	output   map[string][]string // each running test's last lines
	tail     []string            // the binary's last lines, whoever printed them
	first    int                 // len(Failures) when the binary started
	lastFail bool                // the previous line was a "--- FAIL"
	panicked int                 // the failure a panic's stack belongs to, or -1
	frame    bool                // its _test.go frame was kept
	timedOut string              // go test's timeout panic, while its running tests are listed
	listed   bool                // a running test was listed after it
}

// running names the test the console shows, or says there is none.
func (l *testLog) running() string {
	if l.current == "" {
		return "(outside any test)"
	}
	return l.current
}

// keep appends line to lines, keeping the last failureLines.
func keep(lines []string, line string) []string {
	lines = append(lines, line)
	if len(lines) > failureLines {
		lines = append(lines[:0], lines[len(lines)-failureLines:]...)
	}
	return lines
}

// fail records a failure while fewer than maxFailures are, and returns its
// index, or -1.
func (t *Transcript) fail(test string, lines []string) int {
	if len(t.Failures) >= maxFailures {
		return -1
	}
	t.Failures = append(t.Failures, Failure{Test: test, Lines: append([]string(nil), lines...)})
	return len(t.Failures) - 1
}

// feedTest follows go test -v's output: "=== RUN", "=== CONT" and
// "=== NAME" say whose lines follow; "--- PASS/SKIP" ends a test and
// "--- FAIL" records it with its last lines. A panic or a runtime fatal
// error is added to the test that just failed (Go prints "--- FAIL"
// first), or else recorded for the running test; go test's timeout is
// recorded for each test it lists as running. Kernel messages
// ("[  1.2]") are nobody's output. A binary's RINGFENCE-RESULT ends it:
// one that exited non-zero with no failure recorded is recorded with its
// last lines.
func (t *Transcript) feedTest(line string) {
	l := &t.tests
	if l.output == nil {
		l.output = map[string][]string{}
		l.panicked = -1
	}
	if isKernelMessage(line) {
		return
	}
	wasFail := l.lastFail
	l.lastFail = false
	if l.timedOut != "" {
		name, dur, ok := strings.Cut(line, " ")
		switch {
		case line == "running tests:":
			return
		case ok && strings.HasPrefix(dur, "(") && strings.HasSuffix(dur, ")") && !strings.Contains(name, ":"):
			l.panicked = t.fail(name, keep(l.output[name], l.timedOut))
			delete(l.output, name)
			l.listed = true
			return
		default:
			if !l.listed { // a go test that lists no running test
				l.panicked = t.fail(l.running(), keep(l.output[l.current], l.timedOut))
			}
			l.timedOut, l.listed = "", false
		}
	}
	if !strings.HasPrefix(line, MarkerResult+" ") {
		l.tail = keep(l.tail, line)
	}
	switch {
	case strings.HasPrefix(line, "=== RUN") || strings.HasPrefix(line, "=== CONT") || strings.HasPrefix(line, "=== NAME"):
		if f := strings.Fields(line); len(f) >= 3 {
			l.current = f[2]
		}
	case strings.HasPrefix(line, "=== "):
	case strings.HasPrefix(line, "--- FAIL: "):
		name, _, _ := strings.Cut(strings.TrimPrefix(line, "--- FAIL: "), " ")
		t.fail(name, l.output[name])
		delete(l.output, name)
		l.lastFail = true
		if l.current == name {
			l.current = ""
		}
	case strings.HasPrefix(line, "--- PASS: ") || strings.HasPrefix(line, "--- SKIP: "):
		name, _, _ := strings.Cut(line[len("--- PASS: "):], " ")
		if strings.HasPrefix(line, "--- PASS: ") && !strings.Contains(name, "/") {
			if t.Passed == nil {
				t.Passed = map[string]bool{}
			}
			t.Passed[name] = true
		}
		delete(l.output, name)
		if l.current == name {
			l.current = ""
		}
	case strings.HasPrefix(line, "panic: test timed out"):
		l.timedOut = line
	case strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: "):
		switch {
		case l.panicked >= 0:
			// A panic repeated while unwinding: the first one is kept.
		case wasFail && len(t.Failures) > l.first:
			i := len(t.Failures) - 1
			t.Failures[i].Lines = append(t.Failures[i].Lines, line)
			l.panicked = i
		default:
			l.panicked = t.fail(l.running(), keep(l.output[l.current], line))
			delete(l.output, l.current)
		}
	case strings.HasPrefix(line, MarkerResult+" "):
		f := strings.Fields(line)
		if len(f) == 3 && f[2] != "0" && len(t.Failures) == l.first {
			t.fail(f[1]+" (exit "+f[2]+", no test failed)", l.tail)
		}
		*l = testLog{output: map[string][]string{}, first: len(t.Failures), panicked: -1}
	case l.panicked >= 0 && !l.frame && strings.Contains(line, "_test.go:"):
		// The panic's first frame in a test file: where it happened.
		t.Failures[l.panicked].Lines = append(t.Failures[l.panicked].Lines, line)
		l.frame = true
	case l.current != "" && l.panicked < 0:
		l.output[l.current] = keep(l.output[l.current], line)
	}
}

// Feed adds one console line to the transcript and returns the marker it
// carried, or "" for any other line.
func (t *Transcript) Feed(line string) string {
	line = strings.TrimSpace(cleanLine(line))
	if line == "" {
		return ""
	}
	t.LastLine = line
	if t.Panic == "" && strings.Contains(line, "Kernel panic") {
		t.Panic = line
	}
	if t.Lockup == "" && (strings.Contains(line, "soft lockup") || strings.Contains(line, "rcu_preempt detected stalls")) {
		t.Lockup = line
	}
	if strings.HasPrefix(line, "=== RUN ") {
		t.Ran++
	}
	t.feedTest(line)
	marker, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	switch marker {
	case MarkerKernel:
		t.Release = rest
	case MarkerLSM:
		t.LSMSeen = true
		t.LSM = nil
		for _, m := range strings.Split(rest, ",") {
			if m = strings.TrimSpace(m); m != "" {
				t.LSM = append(t.LSM, m)
			}
		}
	case MarkerResult:
		f := strings.Fields(rest)
		if len(f) != 2 {
			return ""
		}
		code, err := strconv.Atoi(f[1])
		if err != nil {
			return ""
		}
		t.Results = append(t.Results, Result{Test: f[0], ExitCode: code})
	case MarkerDone:
		if rest != "" {
			return ""
		}
		t.Done = true
	default:
		return ""
	}
	return marker
}

// isKernelMessage reports whether a console line is the kernel's: it
// starts with a bracketed timestamp such as "[ 1192.672039]".
func isKernelMessage(line string) bool {
	stamp, _, ok := strings.Cut(line, "]")
	if !ok || !strings.HasPrefix(stamp, "[") {
		return false
	}
	stamp = strings.TrimSpace(stamp[1:])
	_, err := strconv.ParseFloat(stamp, 64)
	return err == nil
}

// HasLSM reports whether name is in the active LSM list.
func (t Transcript) HasLSM(name string) bool {
	for _, m := range t.LSM {
		if m == name {
			return true
		}
	}
	return false
}

// result returns the last result reported for test.
func (t Transcript) result(test string) (Result, bool) {
	for i := len(t.Results) - 1; i >= 0; i-- {
		if t.Results[i].Test == test {
			return t.Results[i], true
		}
	}
	return Result{}, false
}

// ParseTranscript reads a whole console log.
func ParseTranscript(r io.Reader) (Transcript, error) {
	var t Transcript
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		t.Feed(sc.Text())
	}
	return t, sc.Err()
}

// cleanLine removes terminal escape sequences and control characters (the
// serial console's carriage returns, firmware screen resets) from a line.
func cleanLine(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 0x1b:
			// Skip ESC [ parameters final-byte, or ESC plus one byte.
			if i+1 < len(s) && s[i+1] == '[' {
				i += 2
				for i < len(s) && (s[i] < 0x40 || s[i] > 0x7e) {
					i++
				}
			} else {
				i++
			}
		case c == '\t':
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Ending is how a VM's qemu process ended.
type Ending int

const (
	// EndExited means qemu exited by itself: the guest powered off, or it
	// panicked or reset (qemu runs with -no-reboot and the kernel with
	// panic=-1).
	EndExited Ending = iota
	// EndTimeout means qemu was killed when the overall timeout expired.
	EndTimeout
	// EndBootTimeout means qemu was killed because no RINGFENCE-LSM line
	// arrived within the boot timeout.
	EndBootTimeout
	// EndInterrupted means qemu was killed because the run was cancelled.
	EndInterrupted
)

// String names the ending for messages.
func (e Ending) String() string {
	switch e {
	case EndExited:
		return "exited"
	case EndTimeout:
		return "timeout"
	case EndBootTimeout:
		return "boot timeout"
	case EndInterrupted:
		return "interrupted"
	}
	return fmt.Sprintf("Ending(%d)", int(e))
}

// Verdict is the judgement of one boot.
type Verdict struct {
	// Pass is true when the kernel passed.
	Pass bool
	// Reason explains the verdict in a few words.
	Reason string
	// DiedBeforeReport is true when the VM died, or hung in early boot,
	// before printing any RINGFENCE-RESULT; such a boot is worth retrying.
	DiedBeforeReport bool
	// PanickedMidway is true when the kernel panicked after some results:
	// under TCG this has been seen when code patching (text_poke with int3,
	// as attaching a tracepoint does) races the other vCPU. Worth one retry;
	// a panic the tests cause comes back.
	PanickedMidway bool
	// WedgedMidway is true when the guest reported a soft lockup or an RCU
	// stall and then timed out: seen under TCG when the emulator's threads
	// are starved on a busy host. Worth one retry; a hang the tests cause
	// comes back.
	WedgedMidway bool
}

// Retry reports whether the boot should be tried once more.
func (v Verdict) Retry() bool { return v.DiedBeforeReport || v.PanickedMidway || v.WedgedMidway }

// Judge decides whether a boot that ran the given test binaries passed:
// bpf must be an active LSM, every binary must report exit code 0,
// RINGFENCE-DONE must have been printed, and every test named in require
// must have passed (a -run filter that no longer matches one of them, say
// after a rename, fails rather than quietly running less).
func Judge(t Transcript, tests, require []string, end Ending) Verdict {
	var reasons []string
	early := len(t.Results) == 0 && !t.Done
	if !t.Done {
		reasons = append(reasons, deathReason(t, tests, end))
	}
	if !early || t.LSMSeen {
		switch {
		case !t.LSMSeen:
			reasons = append(reasons, "no "+MarkerLSM+" line")
		case len(t.LSM) == 0:
			reasons = append(reasons, "LSM list empty (securityfs not mounted?)")
		case !t.HasLSM("bpf"):
			reasons = append(reasons, "bpf not in LSM list "+strings.Join(t.LSM, ","))
		}
	}
	if t.Done && t.Ran == 0 && len(tests) > 0 {
		reasons = append(reasons, "no test ran (does the -run filter match any test?)")
	}
	if t.Done {
		var missing []string
		for _, name := range require {
			if !t.Passed[name] {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			reasons = append(reasons, "required tests did not pass: "+strings.Join(missing, ", "))
		}
	}
	for _, name := range tests {
		r, ok := t.result(name)
		switch {
		case ok && r.ExitCode != 0:
			reasons = append(reasons, fmt.Sprintf("%s exit %d", name, r.ExitCode))
		case !ok && t.Done:
			reasons = append(reasons, "no result for "+name)
		}
	}
	if len(reasons) > 0 {
		return Verdict{
			Reason:           strings.Join(reasons, "; "),
			DiedBeforeReport: early && (end == EndExited || end == EndBootTimeout),
			PanickedMidway:   !early && !t.Done && t.Panic != "" && end == EndExited,
			WedgedMidway:     !t.Done && t.Lockup != "" && end == EndTimeout,
		}
	}
	return Verdict{Pass: true, Reason: fmt.Sprintf("%d/%d test binaries passed", len(tests), len(tests))}
}

// deathReason describes a VM that never printed RINGFENCE-DONE.
func deathReason(t Transcript, tests []string, end Ending) string {
	running := ""
	for _, name := range tests {
		if _, ok := t.result(name); !ok {
			running = name
			break
		}
	}
	var what string
	switch {
	case end == EndBootTimeout:
		what = "VM hung in early boot (no " + MarkerLSM + " before the boot timeout)"
	case end == EndInterrupted:
		what = "interrupted"
	case end == EndTimeout && running != "":
		what = "timed out while " + running + " was running"
	case end == EndTimeout:
		what = "timed out before " + MarkerDone
	case !t.LSMSeen:
		what = "VM died before reporting"
	case running != "":
		what = "VM died while " + running + " was running"
	default:
		what = "VM died before " + MarkerDone
	}
	switch {
	case t.Panic != "":
		what += fmt.Sprintf(" (%q)", trimPanic(t.Panic))
	case t.Lockup != "":
		what += fmt.Sprintf(" (after %q)", trimPanic(t.Lockup))
	case end == EndExited && t.LastLine != "":
		what += fmt.Sprintf(" (last line %q)", tail(t.LastLine, 100))
	}
	return what
}

// trimPanic drops the kernel log timestamp and keeps the panic message.
func trimPanic(line string) string {
	if i := strings.Index(line, "Kernel panic"); i >= 0 {
		line = line[i:]
	}
	return tail(line, 120)
}
