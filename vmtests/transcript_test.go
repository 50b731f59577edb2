package vmtests

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

// parse feeds a console log given as one string to a new transcript.
func parse(tb testing.TB, log string) Transcript {
	tb.Helper()
	t, err := ParseTranscript(strings.NewReader(log))
	if err != nil {
		tb.Fatalf("ParseTranscript: %v", err)
	}
	return t
}

func TestJudge(t *testing.T) {
	const boot = "\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2)\r\nBooting from ROM...\r\n"
	const lsm = "RINGFENCE-KERNEL 6.12.117+deb12-amd64\r\n\r\nRINGFENCE-LSM lockdown,capability,landlock,yama,apparmor,tomoyo,bpf,ipe\r\n"
	tests := []struct {
		name      string
		log       string
		tests     []string
		require   []string
		end       Ending
		pass      bool
		died      bool
		panicked  bool
		wedged    bool
		reasonHas []string
	}{
		{
			name:  "pass",
			log:   boot + lsm + "=== RUN   TestX\r\n--- PASS: TestX\r\nPASS\r\n\r\nRINGFENCE-RESULT a.test 0\r\n\r\nRINGFENCE-RESULT b.test 0\r\n\r\nRINGFENCE-DONE\r\n[    3.3] reboot: Power down\r\n",
			tests: []string{"a.test", "b.test"},
			end:   EndExited,
			pass:  true,
		},
		{
			name:    "required tests passed",
			log:     boot + lsm + "=== RUN   TestX\r\n=== RUN   TestX/sub\r\n    --- PASS: TestX/sub (0.00s)\r\n--- PASS: TestX (0.01s)\r\n=== RUN   TestY\r\n--- PASS: TestY (0.00s)\r\nPASS\r\nRINGFENCE-RESULT a.test 0\r\nRINGFENCE-DONE\r\n",
			tests:   []string{"a.test"},
			require: []string{"TestX", "TestY"},
			end:     EndExited,
			pass:    true,
		},
		{
			name:      "a required test did not run",
			log:       boot + lsm + "=== RUN   TestX\r\n=== RUN   TestX/sub\r\n    --- PASS: TestX/sub (0.00s)\r\n--- PASS: TestX (0.01s)\r\n=== RUN   TestZ\r\n--- SKIP: TestZ (0.00s)\r\nPASS\r\nRINGFENCE-RESULT a.test 0\r\nRINGFENCE-DONE\r\n",
			tests:     []string{"a.test"},
			require:   []string{"TestX", "TestY", "TestZ", "sub"},
			end:       EndExited,
			reasonHas: []string{"required tests did not pass: TestY, TestZ, sub"},
		},
		{
			name:      "no test ran",
			log:       boot + lsm + "testing: warning: no tests to run\r\nPASS\r\nRINGFENCE-RESULT a.test 0\r\nRINGFENCE-DONE\r\n",
			tests:     []string{"a.test"},
			end:       EndExited,
			reasonHas: []string{"no test ran"},
		},
		{
			name:      "one binary fails",
			log:       boot + lsm + "RINGFENCE-RESULT a.test 0\r\n--- FAIL: TestY\r\nFAIL\r\nRINGFENCE-RESULT b.test 1\r\nRINGFENCE-DONE\r\n",
			tests:     []string{"a.test", "b.test"},
			end:       EndExited,
			reasonHas: []string{"b.test exit 1"},
		},
		{
			name:      "died before report with panic",
			log:       boot + "[    0.51] Kernel panic - not syncing: Attempted to kill the idle task!\r\n",
			tests:     []string{"a.test"},
			end:       EndExited,
			died:      true,
			reasonHas: []string{"VM died before reporting", "Kernel panic - not syncing: Attempted to kill the idle task!"},
		},
		{
			name:      "died before report without output",
			log:       "",
			tests:     []string{"a.test"},
			end:       EndExited,
			died:      true,
			reasonHas: []string{"VM died before reporting"},
		},
		{
			name:      "hung in early boot",
			log:       boot,
			tests:     []string{"a.test"},
			end:       EndBootTimeout,
			died:      true,
			reasonHas: []string{"hung in early boot"},
		},
		{
			name:      "died during first test",
			log:       boot + lsm + "=== RUN   TestCrash\r\n[    2.9] Kernel panic - not syncing: sysrq triggered crash\r\n",
			tests:     []string{"a.test"},
			end:       EndExited,
			died:      true,
			reasonHas: []string{"VM died while a.test was running", "sysrq triggered crash"},
		},
		{
			name:      "died after a result is not retried",
			log:       boot + lsm + "RINGFENCE-RESULT a.test 0\r\n",
			tests:     []string{"a.test", "b.test"},
			end:       EndExited,
			reasonHas: []string{"VM died while b.test was running"},
		},
		{
			name:      "timeout in a test is not retried",
			log:       boot + lsm + "=== RUN   TestHang\r\n",
			tests:     []string{"a.test"},
			end:       EndTimeout,
			reasonHas: []string{"timed out while a.test was running"},
		},
		{
			name:      "bpf not an active LSM",
			log:       boot + "RINGFENCE-LSM lockdown,capability,landlock,yama,apparmor\r\nRINGFENCE-RESULT a.test 0\r\nRINGFENCE-DONE\r\n",
			tests:     []string{"a.test"},
			end:       EndExited,
			reasonHas: []string{"bpf not in LSM list lockdown,capability,landlock,yama,apparmor"},
		},
		{
			name:      "empty LSM list",
			log:       "RINGFENCE-LSM \r\nRINGFENCE-RESULT a.test 0\r\nRINGFENCE-DONE\r\n",
			tests:     []string{"a.test"},
			end:       EndExited,
			reasonHas: []string{"LSM list empty"},
		},
		{
			name:      "no LSM line",
			log:       "RINGFENCE-RESULT a.test 0\r\nRINGFENCE-DONE\r\n",
			tests:     []string{"a.test"},
			end:       EndExited,
			reasonHas: []string{"no RINGFENCE-LSM line"},
		},
		{
			name:      "missing result",
			log:       lsm + "RINGFENCE-RESULT a.test 0\r\nRINGFENCE-DONE\r\n",
			tests:     []string{"a.test", "b.test"},
			end:       EndExited,
			reasonHas: []string{"no result for b.test"},
		},
		{
			name:      "markers inside other lines are ignored",
			log:       lsm + "log: RINGFENCE-RESULT a.test 0\r\nsaw RINGFENCE-DONE\r\nRINGFENCE-DONE now\r\n",
			tests:     []string{"a.test"},
			end:       EndExited,
			died:      true,
			reasonHas: []string{"VM died while a.test was running"},
		},
		{
			name:      "kernel panic after a result is retried once",
			log:       lsm + "RINGFENCE-RESULT a.test 0\r\n[ 24.6] Kernel panic - not syncing: Fatal exception in interrupt\r\n",
			tests:     []string{"a.test", "b.test"},
			end:       EndExited,
			panicked:  true,
			reasonHas: []string{"VM died while b.test was running", "Fatal exception in interrupt"},
		},
		{
			name:      "a soft lockup then a timeout is retried once",
			log:       lsm + "RINGFENCE-RESULT a.test 0\r\n[ 200.9] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [b.test:889]\r\n",
			tests:     []string{"a.test", "b.test"},
			end:       EndTimeout,
			wedged:    true,
			reasonHas: []string{"timed out while b.test was running", "soft lockup"},
		},
		{
			name:      "a timeout without a lockup is not retried",
			log:       lsm + "RINGFENCE-RESULT a.test 0\r\n",
			tests:     []string{"a.test", "b.test"},
			end:       EndTimeout,
			reasonHas: []string{"timed out while b.test was running"},
		},
		{
			name:      "malformed result is ignored",
			log:       lsm + "RINGFENCE-RESULT a.test zero\r\nRINGFENCE-DONE\r\n",
			tests:     []string{"a.test"},
			end:       EndExited,
			reasonHas: []string{"no result for a.test"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Judge(parse(t, tc.log), tc.tests, tc.require, tc.end)
			if v.Pass != tc.pass || v.DiedBeforeReport != tc.died || v.PanickedMidway != tc.panicked || v.WedgedMidway != tc.wedged {
				t.Errorf("Judge = %+v, want pass=%v diedBeforeReport=%v panickedMidway=%v wedgedMidway=%v", v, tc.pass, tc.died, tc.panicked, tc.wedged)
			}
			if v.Retry() != (tc.died || tc.panicked || tc.wedged) {
				t.Errorf("Retry = %v", v.Retry())
			}
			for _, want := range tc.reasonHas {
				if !strings.Contains(v.Reason, want) {
					t.Errorf("reason %q lacks %q", v.Reason, want)
				}
			}
		})
	}
}

func TestTranscriptFields(t *testing.T) {
	tr := parse(t, "RINGFENCE-KERNEL 6.1.0-56-amd64\r\nRINGFENCE-LSM lockdown,capability,bpf\r\n"+
		"RINGFENCE-RESULT x.test 0\nRINGFENCE-RESULT y.test 2\nRINGFENCE-DONE\n[ 3.5] reboot: Power down\n")
	if tr.Release != "6.1.0-56-amd64" {
		t.Errorf("Release = %q", tr.Release)
	}
	if got := strings.Join(tr.LSM, ","); got != "lockdown,capability,bpf" || !tr.HasLSM("bpf") || tr.HasLSM("selinux") {
		t.Errorf("LSM = %q", got)
	}
	want := []Result{{"x.test", 0}, {"y.test", 2}}
	if len(tr.Results) != len(want) || tr.Results[0] != want[0] || tr.Results[1] != want[1] {
		t.Errorf("Results = %v, want %v", tr.Results, want)
	}
	if !tr.Done || tr.LastLine != "[ 3.5] reboot: Power down" {
		t.Errorf("Done = %v, LastLine = %q", tr.Done, tr.LastLine)
	}
}

func TestCleanLine(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "plain", in: "hello world", want: "hello world"},
		{name: "carriage return", in: "RINGFENCE-DONE\r", want: "RINGFENCE-DONE"},
		{name: "firmware reset sequences", in: "\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS", want: "SeaBIOS"},
		{name: "tab kept", in: "a\tb", want: "a\tb"},
		{name: "bell dropped", in: "a\x07b", want: "ab"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := cleanLine(tc.in); got != tc.want {
				t.Errorf("cleanLine(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestTranscriptFailures reads the console of four real go test -v runs
// (testdata/failures.log): a failed subtest, a panic, go test's timeout
// with parallel tests, and an os.Exit(3) with no failed test.
func TestTranscriptFailures(t *testing.T) {
	f, err := os.Open("testdata/failures.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := ParseTranscript(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []Failure{
		{Test: "TestB"},
		{Test: "TestB/sub", Lines: []string{"a_test.go:11: started", "a_test.go:11: got 3, want 4"}},
		{Test: "TestPanic", Lines: []string{"a_test.go:15: before the panic",
			"panic: assignment to entry in nil map [recovered, repanicked]", "/src/x/a_test.go:17 +0x90"}},
		{Test: "TestPar1", Lines: []string{"a_test.go:19: p1", "a_test.go:19: p1 failed"}},
		{Test: "TestPar2", Lines: []string{"a_test.go:20: p2 start", "panic: test timed out after 2s", "/src/x/a_test.go:20 +0x94"}},
		{Test: "exit.test (exit 3, no test failed)", Lines: []string{"=== RUN   TestExit", "b_test.go:12: about to exit"}},
	}
	if !reflect.DeepEqual(tr.Failures, want) {
		t.Errorf("failures:\n%s\nwant:\n%s", failuresText(tr.Failures), failuresText(want))
	}
}

func failuresText(fs []Failure) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s\n", f.Test)
		for _, l := range f.Lines {
			fmt.Fprintf(&b, "    %q\n", l)
		}
	}
	return b.String()
}

func TestTranscriptFailureLinesBounded(t *testing.T) {
	var tr Transcript
	tr.Feed("=== RUN   TestLoud")
	for i := 0; i < 100; i++ {
		tr.Feed(fmt.Sprintf("    loud_test.go:1: line %d", i))
	}
	tr.Feed("--- FAIL: TestLoud (2.00s)")
	if len(tr.Failures) != 1 || len(tr.Failures[0].Lines) != failureLines {
		t.Fatalf("failures = %q, want one with %d lines", tr.Failures, failureLines)
	}
	if got := tr.Failures[0].Lines[failureLines-1]; got != "loud_test.go:1: line 99" {
		t.Errorf("last line kept = %q, want the last printed", got)
	}
	for i := 0; i < 2*maxFailures; i++ {
		tr.Feed(fmt.Sprintf("--- FAIL: TestN%d (0.00s)", i))
	}
	if len(tr.Failures) != maxFailures {
		t.Errorf("%d failures kept, want at most %d", len(tr.Failures), maxFailures)
	}
}
