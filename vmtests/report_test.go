package vmtests

import (
	"strings"
	"testing"
	"time"
)

func TestWriteReport(t *testing.T) {
	results := []KernelResult{
		{Series: "6.1", Package: "linux-image-6.1.0-56-amd64", Pass: true, Reason: "1/1 test binaries passed",
			BootTime: 7200 * time.Millisecond, TestTime: 200 * time.Millisecond, Duration: 7400 * time.Millisecond},
		{Series: "6.12", Package: "linux-image-6.12.117+deb12-amd64", Reason: "a.test exit 1", Retried: true,
			Duration: 9 * time.Second},
		{Series: "6.6", Reason: "kernel 6.6: no package matches"},
	}
	var b strings.Builder
	if err := WriteReport(&b, results); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	wants := [][]string{
		{"KERNEL", "PACKAGE", "RESULT", "DURATION"},
		{"6.1 ", "PASS (1/1 test binaries passed)", "7.2s", "0.2s", "7.4s"},
		{"6.12 ", "FAIL: a.test exit 1", "booted twice", "9.0s"},
		{"6.6 ", " - ", "FAIL: kernel 6.6: no package matches"},
	}
	if len(lines) != len(wants) {
		t.Fatalf("report has %d lines, want %d:\n%s", len(lines), len(wants), b.String())
	}
	for i, want := range wants {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
}

func TestWriteReportFailures(t *testing.T) {
	results := []KernelResult{
		{Series: "6.1", Pass: true, Reason: "1/1 test binaries passed"},
		{Series: "6.12", Reason: "sensor.test exit 1", Log: "/cache/logs/6.12.log", Failures: []Failure{
			{Test: "TestB/sub", Lines: []string{"b_test.go:21: got 3, want 4"}},
			{Test: "TestB"},
		}},
	}
	var b strings.Builder
	if err := WriteReport(&b, results); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	failures, table, ok := strings.Cut(out, "\n\n")
	if !ok || !strings.HasPrefix(table, "KERNEL") {
		t.Fatalf("the failures do not come before the table:\n%s", out)
	}
	if strings.Contains(table, "--- FAIL") {
		t.Errorf("failures inside the table:\n%s", out)
	}
	want := "[6.12] failed tests (the whole console log: /cache/logs/6.12.log):\n" +
		"[6.12] --- FAIL: TestB/sub\n[6.12]     b_test.go:21: got 3, want 4\n[6.12] --- FAIL: TestB"
	if failures != want {
		t.Errorf("failures:\n%s\nwant:\n%s", failures, want)
	}
}

func TestAllPassed(t *testing.T) {
	tests := []struct {
		name    string
		results []KernelResult
		want    bool
	}{
		{name: "none", want: false},
		{name: "all pass", results: []KernelResult{{Pass: true}, {Pass: true}}, want: true},
		{name: "one fails", results: []KernelResult{{Pass: true}, {}}, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := AllPassed(tc.results); got != tc.want {
				t.Errorf("AllPassed = %v, want %v", got, tc.want)
			}
		})
	}
}
